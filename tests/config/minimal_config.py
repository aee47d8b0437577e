"""The smallest monitor.yaml that passes: one Mango venue and one desk on it. Tests that vary one
thing append sections to it (a line indented by four continues desk-a) or replace one of its lines."""

ACCOUNT_A = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"  # desk-a's Mango account

MINIMAL = f"""\
venues:
  mango:
    kind: mango_v3_fills
    urls: [ws://127.0.0.1:8790]
desks:
  desk-a:
    accounts:
      mango: [{ACCOUNT_A}]
"""
