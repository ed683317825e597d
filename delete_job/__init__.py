"""The delete_job function: its message contract (`request`), its decisions (`decision`, `retry`),
its failure records and retry copies (`records`), the processing of one message (`processor`), and
the trigger that feeds it (`function`). It may import `shared`; `shared` never imports it."""
