"""wanbench: parse, compare, judge and report Wan2.1 text-to-video benchmark runs.

Modules: ``parse`` (logs, profile files, time files, run directories),
``compare`` (percent change and verdict), ``report`` (tables as markdown, CSV,
JSON), ``cli`` (the ``wanbench`` command).
"""
