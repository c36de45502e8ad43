pytest_plugins = ["tests.fixtures_services", "tests.fixtures_s3", "tests.fixtures_workers", "tests.fixtures_async"]
