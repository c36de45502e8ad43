"""Document outputs besides text and JSON: hOCR, ALTO, Markdown."""
