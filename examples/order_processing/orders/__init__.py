"""The order-processing example: the reference's order workflow, written with conveyor."""
