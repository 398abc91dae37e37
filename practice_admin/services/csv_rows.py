"""CSV rows with the file line each starts on, for imports whose errors must
name the line a person sees in their editor."""

import csv
import io


def numbered_rows(text: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of the CSV text, each with the line of the file it
    starts on. Counting rows would drift after a blank line or a quoted cell
    spanning lines; the reader's line_num counts the file's lines. Raises
    csv.Error for text the reader cannot parse."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, consumed = [], 0
    for cells in reader:
        start, consumed = consumed + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            rows.append((start, cells))
    return rows
