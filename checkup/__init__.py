"""The settings doctor's checks (doctor.py): each looks at one thing a run needs and says ok, warn or FAIL, and why."""
