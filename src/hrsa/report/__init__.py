"""The report: every table and figure of the paper, from the workflow's result files.

- :mod:`hrsa.report.collect` loads result files into tidy frames and names pairs for display;
- :mod:`hrsa.report.tables` builds Tables 1, 3, 4, 12, 13 (CSV + Markdown);
- :mod:`hrsa.report.verdicts` derives Table 2's verdicts from the numbers and declared thresholds;
- :mod:`hrsa.report.figures` draws Figures 3-13 in the one style of :mod:`hrsa.report.style`;
- :mod:`hrsa.report.readme` writes ``results/report/README.md`` linking every output;
- :mod:`hrsa.report.output` writes files atomically;
- :mod:`hrsa.report.examples` writes a small made-up results tree to preview all of it.
"""
