"""Stage 3 (faces): the inspector's desk: server-rendered pages (Jinja2) in zh-CN and en, served by the API's
app under ``/ui/``, and the public scan page of a trace code under ``/scan/``."""
