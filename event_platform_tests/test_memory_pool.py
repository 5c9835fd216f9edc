import os
import subprocess
import sys

SHOW_POOL = "import event_platform.definitions, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def pool_of_a_fresh_process(environment: dict[str, str]) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", SHOW_POOL], env=environment, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def test_arrow_allocates_with_the_system_allocator_wherever_the_package_is_loaded() -> None:
    environment = {name: value for name, value in os.environ.items() if name != "ARROW_DEFAULT_MEMORY_POOL"}
    assert pool_of_a_fresh_process(environment) == "system"


def test_an_explicit_choice_of_pool_is_respected() -> None:
    assert pool_of_a_fresh_process({**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"
