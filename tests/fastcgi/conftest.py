from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fastcgi.phpfpm import PhpFpm, php_fpm_binary, start_php_fpm


@pytest.fixture(scope="session")
def php_fpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpFpm]:
    binary = php_fpm_binary()
    if binary is None:
        pytest.skip("php-fpm is not installed (apt-get install php-fpm)")
    fpm = start_php_fpm(binary, tmp_path_factory.mktemp("php-fpm"))
    try:
        yield fpm
    finally:
        fpm.stop()
