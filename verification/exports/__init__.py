"""Excel exports: ``registry`` collects one ``Exporter`` per module here (``base`` says what one is),
``writer`` writes every workbook, ``storage`` keeps the files encrypted, ``services`` logs, builds and serves them."""
