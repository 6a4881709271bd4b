"""hrsa: Hierarchical Representation Similarity Analysis of base vs reasoning LLMs.

The library behind the hrsa-workflow Snakemake workflow; see DESIGN.md for the data contracts.
"""

__version__ = "0.1.0"
