"""Reading results: the read-only SQL sandbox over the state's views, CSV/Parquet/JSON export,
HTML and Markdown reports with their charts, and the ``-o`` files they write.

In: the state file, opened read-only. Out: tables, files and reports. Nothing here writes the
state.
"""
