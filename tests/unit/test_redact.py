from composekit.redact import Redactor, redact


def test_url_password_masked() -> None:
    assert redact("postgresql://app:s3cr3t@db:5432/app") == "postgresql://app:***@db:5432/app"


def test_url_without_password_untouched() -> None:
    assert redact("postgresql://app@db/app") == "postgresql://app@db/app"


def test_conninfo_and_env_forms_masked() -> None:
    text = "host=db password=hunter22 user=app PGPASSWORD='abc def' POSTGRES_PASSWORD: xyz123"
    out = redact(text)
    assert "hunter22" not in out and "xyz123" not in out
    assert "password=***" in out
    assert "abc def" not in out and "PGPASSWORD='***'" in out


def test_registered_secret_masked_anywhere() -> None:
    redactor = Redactor().with_secrets("Zq9-very-random")
    assert redactor("FATAL: something Zq9-very-random leaked") == "FATAL: something *** leaked"
    assert redact("FATAL: something Zq9-very-random leaked").endswith("Zq9-very-random leaked")
