"""Adapters: the protocols in `conveyor.adapters.base` and their implementations, one subpackage each."""
