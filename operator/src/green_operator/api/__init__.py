"""The GreenTrainingJob API: spec, status, phases, conditions and the child manifests."""
