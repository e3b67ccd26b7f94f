"""The web app's steps as plain, testable functions; ``app.py`` only builds the page."""
