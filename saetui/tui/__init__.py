"""The Textual app. Nothing here imports torch at module import time; the session does, in workers."""
