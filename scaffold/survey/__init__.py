"""``scaffold survey``: AutoRound compatibility across the transformers model zoo.

- :mod:`scaffold.survey.worker` surveys one model type (tiny build + inspect, stock AutoRound, new-arch + verify);
- :mod:`scaffold.survey.runner` runs workers as isolated subprocesses with a time limit, in parallel, resumably;
- :mod:`scaffold.survey.rows` is the row dataclass and the results.jsonl store;
- :mod:`scaffold.survey.render` writes SURVEY.md, survey.html and the summary line.
"""

from scaffold.survey.render import Summary, summarize, write_outputs
from scaffold.survey.rows import SurveyRow, latest_rows, read_rows
from scaffold.survey.runner import SurveyOptions, causal_lm_types, run_survey, select_types

__all__ = [
    "SurveyOptions",
    "SurveyRow",
    "Summary",
    "causal_lm_types",
    "latest_rows",
    "read_rows",
    "run_survey",
    "select_types",
    "summarize",
    "write_outputs",
]
