"""Wiring only: the FunctionApp and the blueprints it registers."""

import azure.functions as func

from delete_job.function import blueprint

app = func.FunctionApp()
app.register_functions(blueprint)
