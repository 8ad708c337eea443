"""Second-order aggregation: the spec (``spec``), its SQL (``compile``), schema checks (``check``) and DataFusion execution (``execute``)."""
