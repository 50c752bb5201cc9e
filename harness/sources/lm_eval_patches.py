"""lm-eval patches for loading and rendering tasks, written against lm-eval 0.4.13. Listed with the
scoring ones in harness/backends/patches.py; tests/backends/test_patches.py pins what each relies on.

Here, not there, because tasks are loaded in sources/ (below backends/ in the layers) and their
templates are rendered wherever tasks are used: building them, scoring, `harness monitor` and
`harness datacheck`.
"""

from __future__ import annotations

import functools


def cache_compiled_templates() -> None:
    """Make lm-eval compile each Jinja prompt template once per process (idempotent).

    Why: lm-eval's `apply_template` compiles the template string anew for every document on every
    call (doc_to_text, doc_to_target, doc_to_choice; each again for every model scored): ~5,000
    compilations, 2.5 s of the 10 s spent scoring the bench suite for three models. Rendering the
    same compiled template gives the same text (tests/test_speed.py compares every stored record).
    Relies on (lm-eval 0.4.13): tasks render through `lm_eval.utils.apply_template(template, doc)`,
    looked up on the module at each call, which is `utils.env.from_string(template).render(**doc)`.
    """
    from lm_eval import utils

    if hasattr(utils.apply_template, "__wrapped__"):
        return
    compiled = functools.lru_cache(maxsize=4096)(utils.env.from_string)

    @functools.wraps(utils.apply_template)
    def apply_template(template: str, doc: dict) -> str:
        return compiled(template).render(**doc)

    utils.apply_template = apply_template
