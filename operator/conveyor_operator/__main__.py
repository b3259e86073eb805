"""`python -m conveyor_operator` is `conveyor-operator`."""

from conveyor_operator import main

main()
