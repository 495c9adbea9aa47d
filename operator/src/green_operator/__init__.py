"""Green Training Operator: runs GreenTrainingJobs where and when the grid is cleanest."""

__version__ = "0.1.0"
