"""The run report and the comparison page: gather a run dir, sections, charts, HTML. Pure: data in, HTML out. May import: logparse."""
