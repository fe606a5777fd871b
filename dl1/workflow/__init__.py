"""The main job as library functions: prepare, finetune, predict, inspect, submit, demo; ``Results``
owns the results folder's file names."""

from dl1.workflow import steps
from dl1.workflow.demo import demo
from dl1.workflow.results import Results

__all__ = ["Results", "demo", "steps"]
