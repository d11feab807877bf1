"""``python -m bayesstruct.layers``: print the supported-layers table (Markdown)."""

from . import markdown_table

print(markdown_table())
