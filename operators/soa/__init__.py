"""Second-order aggregation.

``spec`` (what the user writes), ``validate`` (its shape, pure), ``compile`` (output names and
SQL, pure), ``check`` (against input schemas), ``df_session`` and ``execute`` (DataFusion).
"""
