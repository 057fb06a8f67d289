"""Statistics: DataFrames and plain arguments in, tidy DataFrames out.

No config objects, no file I/O, no printing.
"""
