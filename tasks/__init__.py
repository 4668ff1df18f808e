"""Task libraries: one module per task, functions of plain arguments (see each module)."""
