"""harness: evaluation and regression testing for fine-tuned LLMs.

The stages, in the order data flows through them (see DESIGN.md):
config -> plan -> execute -> store -> compare -> stats -> gates / report.
"""

__version__ = "0.2.0"
