"""Small programs that run a released Airflow component in isolation for a test (one process each)."""
