"""``inbound.mailboxes`` as in the issue's contract: loads, paths resolve
against the config file's directory, defaults fill the rest. (Refusals are
in the bad-config corpus: tests/configs/bad/inbound-*.yaml.)"""
from __future__ import annotations

from gateway.config import load_config

CONTRACT = """\
inbound:
  mailboxes:
    - name: frontdesk
      host: imap.provider.example
      port: 993
      tls: implicit
      ca_file: null
      user: frontdesk@smiledental.example
      password_file: frontdesk.imap.pass
      folders: [INBOX]
      archive_folder: "Encrypted originals"
    - name: billing
      host: imap.provider.example
      tls: starttls
      port: 143
      ca_file: ca.pem
      user: billing@smiledental.example
      password_file: billing.pass
"""


def test_contract_config_loads_with_resolved_paths(tmp_path):
    for name in ("frontdesk.imap.pass", "billing.pass"):
        (tmp_path / name).write_text("secret\n")
        (tmp_path / name).chmod(0o600)
    path = tmp_path / "phigate.yaml"
    path.write_text(CONTRACT)
    config = load_config(path)
    front, billing = config.inbound.mailboxes
    assert front.password_file == tmp_path / "frontdesk.imap.pass"
    assert front.ca_file is None and front.folders == ["INBOX"]
    assert front.archive_folder == "Encrypted originals"
    assert billing.tls == "starttls" and billing.ca_file == tmp_path / "ca.pem"
    assert billing.folders == ["INBOX"] and billing.poll_interval == 60.0
    assert config.inbound.reconnect_max == 60.0


def test_no_inbound_section_means_no_mailboxes():
    assert load_config(None).inbound.mailboxes == []
