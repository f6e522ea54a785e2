"""Settings: every AMIGUARD_* variable parsed at start-up; a bad one is named in the error."""

import pytest

from amiguard.models.settings import Mode, SettingsError, TagRule, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("AMIGUARD_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_contract_when_nothing_is_set():
    settings = load_settings()
    assert settings.mode is Mode.ENFORCE
    assert settings.required_tags == {"Owner": TagRule(), "CostCenter": TagRule()}
    assert settings.approval_tag == "amiguard:approved"
    assert settings.trusted_principals == () and settings.dr_regions == () and settings.dr_kms_keys == {}


def test_lists_and_json_are_parsed_when_given_in_contract_form(monkeypatch):
    monkeypatch.setenv(
        "AMIGUARD_TRUSTED_PRINCIPALS", "111122223333, arn:aws:organizations::111122223333:organization/o-abcdefghij"
    )
    monkeypatch.setenv(
        "AMIGUARD_REQUIRED_TAGS",
        '{"Environment": {"allowed": ["dev","prod"]}, "Owner": {"pattern": "^[^@]+@example\\\\.com$"}}',
    )
    monkeypatch.setenv("AMIGUARD_DR_REGIONS", "us-west-2,eu-west-1")
    monkeypatch.setenv("AMIGUARD_DR_KMS_KEYS", '{"us-west-2": "alias/dr"}')
    settings = load_settings()
    assert settings.trusted_principals[0] == "111122223333"
    assert settings.required_tags["Environment"].allowed == ("dev", "prod")
    assert settings.dr_regions == ("us-west-2", "eu-west-1")
    assert settings.dr_kms_keys == {"us-west-2": "alias/dr"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AMIGUARD_MODE", "fix-everything"),
        ("AMIGUARD_TRUSTED_PRINCIPALS", "12345678901"),
        ("AMIGUARD_PUBLIC_ALLOWLIST", "ami-XXXXXXXX"),
        ("AMIGUARD_DR_REGIONS", "us-east"),
        ("AMIGUARD_DR_KMS_KEYS", "{not json"),
        ("AMIGUARD_DR_KMS_KEYS", '{"us-west-2": "not a key"}'),
        ("AMIGUARD_REQUIRED_TAGS", '{"Owner": {"pattern": "("}}'),
        ("AMIGUARD_REQUIRED_TAGS", "amiguard:violation"),
        ("AMIGUARD_ALERT_TOPIC_ARN", "amiguard-alerts"),
        ("AMIGUARD_SLACK_WEBHOOK_SECRET", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("AMIGUARD_ORGANIZATION_ID", "o-short"),
        ("AMIGUARD_ORGANIZATION_ID", "arn:aws:organizations::111122223333:organization/o-abcdefghij"),
        ("AMIGUARD_OWN_RULES", "arn:aws:events:us-east-1:123456789012:rule/a/b/c"),
        ("AMIGUARD_SWEEP_QUEUE_URL", "arn:aws:sqs:us-east-1:111122223333:amiguard-sweep"),
    ],
)
def test_start_up_fails_naming_the_variable_when_value_is_bad(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_start_up_fails_naming_the_variable_when_a_required_setting_is_empty():
    with pytest.raises(SettingsError, match="AMIGUARD_ALERT_TOPIC_ARN"):
        load_settings().require("alert_topic_arn")


def test_organization_mode_is_read_when_organization_id_is_set(monkeypatch):
    monkeypatch.setenv("AMIGUARD_ORGANIZATION_ID", "o-abcdefghij")

    assert load_settings().organization_id == "o-abcdefghij"


def test_rule_of_a_custom_bus_is_named_bus_slash_rule_when_given_by_arn(monkeypatch):
    monkeypatch.setenv(
        "AMIGUARD_OWN_RULES",
        "arn:aws:events:us-east-1:123456789012:rule/amiguard-PublicGuardFunctionSharingChanged-A1,"
        "arn:aws:events:us-east-1:123456789012:rule/amiguard-amiguard-central/amiguard-TagEnforcerFunctionImagesAndTags-B2",
    )

    assert load_settings().own_rules == (
        "amiguard-PublicGuardFunctionSharingChanged-A1",
        "amiguard-amiguard-central/amiguard-TagEnforcerFunctionImagesAndTags-B2",
    )
