"""``lumicap serve``: a local web page to try the enhancer (``pip install -e ".[serve]"``).

``jobs`` holds what does not depend on the web stack (the model menu, the queue of photos, their files);
``app`` is the Starlette application around it; ``static/`` the page, which loads nothing from the internet.
"""
