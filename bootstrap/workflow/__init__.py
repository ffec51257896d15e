"""The run machinery: the phase tree, the plan, run data, the runner and the dry run."""
