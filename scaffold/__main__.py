from scaffold.cli import app

app()
