import json

import numpy as np
import pytest

from green_trainer import progress
from green_trainer.progress_files import Progress, ProgressReader, decode


def test_counts_are_kept_in_memory_without_the_wrapper():
    reporter = progress.Reporter(None)
    reporter.add(32, 1, 0)
    reporter.add(32, 1, 4096)
    assert reporter.totals() == Progress(samples=64, steps=2, tokens=4096)


def test_the_module_api_validates_its_arguments():
    before = progress.totals()
    progress.report(samples=np.int64(8), steps=1)
    assert progress.totals() == before + Progress(8, 1, 0)
    with pytest.raises(ValueError, match=r"samples=-1"):
        progress.report(samples=-1)
    with pytest.raises(TypeError, match="tokens"):
        progress.report(tokens=1.5)  # type: ignore[arg-type]


def test_the_wrapper_reads_the_sum_of_every_process_file(tmp_path):
    first = progress.Reporter(tmp_path, write_interval=0.0)
    second = progress.Reporter(tmp_path, write_interval=3600.0)
    first.add(10, 1, 100)
    second.add(5, 1, 0)  # the first write happens at once, later ones wait for the interval
    second.add(5, 1, 0)
    reader = ProgressReader(tmp_path)
    assert reader.read() == Progress(samples=15, steps=2, tokens=100)
    second.flush()
    assert reader.read() == Progress(samples=20, steps=3, tokens=100)


def test_a_broken_file_keeps_its_last_good_value(tmp_path):
    reporter = progress.Reporter(tmp_path, write_interval=0.0)
    reporter.add(7, 1, 0)
    reader = ProgressReader(tmp_path)
    assert reader.read().samples == 7
    (tmp_path / reporter.name).write_text("{not json")
    (tmp_path / ".half-written.json.tmp").write_text("{")
    assert reader.read().samples == 7


def test_a_forked_process_starts_its_own_count_and_file(tmp_path):
    reporter = progress.Reporter(tmp_path)
    reporter.add(3, 1, 0)
    name = reporter.name
    reporter.after_fork()
    assert reporter.totals() == Progress()
    assert reporter.name != name


def test_decode_rejects_bad_counts():
    assert decode(json.dumps({"samples": 1, "steps": 2})) == Progress(1, 2, 0)
    with pytest.raises(ValueError, match="steps"):
        decode(json.dumps({"steps": -2}))
    with pytest.raises(ValueError, match="object"):
        decode("[1]")
