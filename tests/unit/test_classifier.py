"""PHI classifier: each detector (valid / invalid forms), the combination rule, shadow mode,
fail-closed behaviour and the promise that no matched text leaves the classifier."""

from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import Verdict
from gateway.policy.classifiers import build_classifier, candidates
from gateway.policy.classifiers.patterns import icd10_is_plausible, npi_is_valid, ssn_is_valid

PRACTICE = "Front Desk <desk@cedarhollowdental.example>"


def mail(
    body: str,
    subject: str = "note",
    to: str = "Dr. Ann Vik <avik@cedarhollowdental.example>",
    sender: str = PRACTICE,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    return bytes(msg)


@pytest.fixture(scope="module")
def classifier():
    return build_classifier()


def detectors(verdict, location=None):
    return {f.detector for f in verdict.findings if location is None or f.location == location}


# ---------------------------------------------------------------- identifiers


@pytest.mark.parametrize("ssn", ["219-09-9999", "078-05-1120", "123 45 6789"])
def test_valid_ssn_alone_is_phi(classifier, ssn):
    verdict = classifier.classify(mail(f"Card on file shows {ssn} for the guarantor."))
    assert verdict.phi and "ssn" in detectors(verdict)


@pytest.mark.parametrize(
    "ssn", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"]
)
def test_unlabelled_ssn_breaking_ssa_rules_is_ignored(classifier, ssn):
    verdict = classifier.classify(mail(f"Reference {ssn} on the pallet."))
    assert "ssn" not in detectors(verdict) and not verdict.phi


def test_labelled_ssn_counts_even_in_never_issued_9xx_range(classifier):
    verdict = classifier.classify(mail("Subscriber SSN: 912-44-0193, please update."))
    assert verdict.phi and "ssn" in detectors(verdict)


def test_ssn_rules():
    assert ssn_is_valid("219099999")
    assert not any(
        ssn_is_valid(s) for s in ("000123456", "666123456", "900123456", "123004567", "123450000")
    )


def test_npi_luhn_with_80840_prefix():
    assert npi_is_valid("1234567893")
    assert not npi_is_valid("1234567890")
    assert not npi_is_valid("123456789")


def test_npi_is_recorded_but_identifies_a_provider_not_a_patient(classifier):
    good = classifier.classify(mail("Billing NPI 1234567893. Fees: D2740 crown $1,200."))
    bad = classifier.classify(mail("Billing NPI 1234567890."))
    assert "npi" in detectors(good) and not good.phi
    assert "npi" not in detectors(bad)


@pytest.mark.parametrize(
    "text",
    [
        "DOB 2/15/1970",
        "born 2012-07-23",
        "Date of birth: March 3, 1981",
        "d.o.b. 23 April 2015",
        "Birth date: 08-06-1984",
    ],
)
def test_date_of_birth_with_label(classifier, text):
    verdict = classifier.classify(mail(f"Please add {text} to the file."))
    assert verdict.phi and "dob" in detectors(verdict)


def test_date_without_label_is_not_a_birth_date(classifier):
    verdict = classifier.classify(mail("The shredding pickup moved to 2/15/2025."))
    assert "dob" not in detectors(verdict) and not verdict.phi


@pytest.mark.parametrize(
    "text, detector",
    [
        ("Chart #: 44821", "mrn"),
        ("MRN PT-28830", "mrn"),
        ("patient ID 99812", "mrn"),
        ("Member ID: 160304898", "member_id"),
        ("Subscriber ID XJ4471920", "member_id"),
        ("Medicaid ID 88231904A", "member_id"),
    ],
)
def test_record_and_insurance_numbers_are_strong_identifiers(classifier, text, detector):
    verdict = classifier.classify(mail(f"{text} - please check eligibility."))
    assert verdict.phi and detector in detectors(verdict)


def test_account_number_needs_clinical_content_nearby(classifier):
    vendor = classifier.classify(
        mail("Invoice for account 4471, balance due $1,204.50 for gloves.")
    )
    patient = classifier.classify(mail("Acct 9835: bridge #3-#5, pontic #4, heavy bruxer."))
    assert not vendor.phi
    assert patient.phi and "account_number" in detectors(patient)


def test_personal_phone_with_symptom_is_phi_office_phone_is_not(classifier):
    personal = classifier.classify(
        mail("Her cell is (555) 201-3344, she has swelling near the implant.")
    )
    office = classifier.classify(
        mail("Call the office at (555) 410-2000 about swelling after surgery.")
    )
    assert personal.phi and "phone" in detectors(personal)
    assert "phone" not in detectors(office) and not office.phi


def test_street_address_with_treatment(classifier):
    verdict = classifier.classify(
        mail("Refund for the crown on #14 goes to 4656 Birchbark Ct Apt 2B.")
    )
    assert verdict.phi and "address" in detectors(verdict)


@pytest.mark.parametrize(
    "body",
    [
        "Patient: Jane Doe",  # a patient of the practice, by label
        "Mrs. Okafor's crown on #19 is loose again.",  # title + surname + tooth
        "Zeke Alcott's bone graft is Monday; he is nervous.",  # possessive name + procedure
        "Delia Renfro -- D1110 + 4BWX",  # schedule line
        "Jasmine called - her front tooth broke at lunch.",  # first name + complaint
    ],
)
def test_patient_name_in_clinical_context(classifier, body):
    verdict = classifier.classify(mail(body))
    assert verdict.phi and "patient_name" in detectors(verdict)


def test_names_of_staff_businesses_and_providers_are_not_patients(classifier):
    body = (
        "Dr. Lena Park joins Cedar Hollow Dental in May and will do implants and crowns.\n"
        "Ambrose Nakashima, Riverside Bend, MN"
    )
    verdict = classifier.classify(mail(body, sender="Ambrose Nakashima <an@riversidebend.example>"))
    assert not verdict.phi and "patient_name" not in detectors(verdict)


def test_recipient_addressed_about_their_treatment(classifier):
    to_patient = "Otto Inoue <otto@mailbox.example>"
    treatment = classifier.classify(
        mail(
            "Otto, your bridge on #19-#21 was denied under the missing tooth clause.", to=to_patient
        )
    )
    reminder = classifier.classify(
        mail("Hi Otto, see you Monday at 9:50 AM. Parking moved to the east side.", to=to_patient)
    )
    assert treatment.phi and "recipient_addressed" in detectors(treatment)
    assert not reminder.phi


def test_second_person_to_a_mailing_list_is_not_a_person(classifier):
    verdict = classifier.classify(
        mail(
            "If your gums bleed or you have tooth pain, book a visit.",
            to="Patients <news@cedarhollowdental.example>",
        )
    )
    assert not verdict.phi


# ---------------------------------------------------------------- clinical content


@pytest.mark.parametrize(
    "text, detector",
    [
        ("D2740", "cdt_code"),
        ("K02.52", "icd10_code"),
        ("ICD-10 K0252", "icd10_code"),
        ("#14", "tooth_number"),
        ("tooth 3", "tooth_number"),
        ("teeth E", "tooth_number"),
        ("#30 MOD", "tooth_surface"),
        ("DO amalgam", "tooth_surface"),
        ("UR quadrant", "quadrant"),
        ("upper left molars", "quadrant"),
        ("5 mm pockets", "perio_charting"),
        ("BOP", "perio_charting"),
        ("root canal", "procedure"),
        ("SRP", "procedure"),
        ("periodontitis", "diagnosis"),
        ("abscess", "diagnosis"),
        ("clindamycin", "medication"),
        ("premedication", "medication"),
    ],
)
def test_clinical_detectors(classifier, text, detector):
    verdict = classifier.classify(mail(f"Patient: Jane Doe. Noted: {text}."))
    assert detector in detectors(verdict)


@pytest.mark.parametrize(
    "text, detector",
    [
        ("D0099", "cdt_code"),
        ("V12.3.4", "icd10_code"),
        ("U07.1", "icd10_code"),
        ("#33", "tooth_number"),
        ("Order #14", "tooth_number"),
        ("#30 MM", "tooth_surface"),
    ],
)
def test_clinical_lookalikes_are_rejected(classifier, text, detector):
    verdict = classifier.classify(mail(f"Noted: {text}."))
    assert detector not in detectors(verdict)


def test_icd10_plausibility():
    assert (
        icd10_is_plausible("K02.52") and icd10_is_plausible("S02.5") and icd10_is_plausible("K05")
    )
    assert (
        not icd10_is_plausible("U07.1")
        and not icd10_is_plausible("KA2.1")
        and not icd10_is_plausible("K0")
    )


def test_fee_schedule_without_a_person_is_not_phi(classifier):
    body = (
        "Self-pay fees:\nD0150 comprehensive evaluation $126\nD2740 crown $1,352\n"
        "D7140 extraction $228\n"
    )
    verdict = classifier.classify(mail(body, to="Boris <boris@mailbox.example>"))
    assert not verdict.phi and "cdt_code" in detectors(verdict)


def test_teaching_case_is_not_phi(classifier):
    body = (
        "Hypothetical patient: Jane Roe, DOB 01/01/1970, with caries on #30. "
        "Invented teaching case."
    )
    assert not classifier.classify(mail(body)).phi


def test_phi_only_in_subject_is_located_there(classifier):
    verdict = classifier.classify(mail("See attached.", subject="Jane Whitaker - biopsy results"))
    assert verdict.phi and "patient_name" in detectors(verdict, "subject")
    assert {"procedure", "diagnosis"} & detectors(verdict, "subject")
    assert any("in subject" in r for r in verdict.reasons)


# ---------------------------------------------------------------- shadow mode and failure


def test_shadow_detector_is_recorded_but_not_acted_on():
    body = "Card holder SSN 219-09-9999."
    acting = build_classifier().classify(mail(body))
    shadow = build_classifier(shadow={"ssn"}).classify(mail(body))
    assert acting.phi
    assert not shadow.phi and not shadow.reasons
    assert [(f.detector, f.shadow) for f in shadow.findings] == [("ssn", True)]


def test_unknown_shadow_detector_is_refused():
    with pytest.raises(ValueError, match="no_such_detector"):
        build_classifier(shadow={"no_such_detector"})


def test_detector_exception_fails_closed(monkeypatch, classifier):
    def broken(hit, span, ctx):
        raise RuntimeError("boom 219-09-9999")

    monkeypatch.setitem(candidates.VALIDATORS, "ssn", broken)
    verdict = classifier.classify(mail("Guarantor SSN 219-09-9999, nothing else."))
    assert verdict.phi
    assert verdict.errors == ("ssn: RuntimeError",)
    assert "219" not in repr(verdict)


def test_scoring_exception_fails_closed(monkeypatch, classifier):
    from gateway.policy.classifiers import classifier as classifiers

    def broken(*args, **kwargs):
        raise KeyError("x")

    monkeypatch.setattr(classifiers, "decide", broken)
    verdict = classifier.classify(mail("Staff potluck Friday."))
    assert verdict.phi and verdict.errors == ("scoring: KeyError",)


def test_garbage_input_does_not_raise(classifier):
    verdict = classifier.classify(b"\x00\xff" * 1000)
    assert verdict.phi in (True, False)


def test_no_matched_text_in_verdict(classifier):
    sensitive = [
        "Delia",
        "Renfro",
        "219-09-9999",
        "03/14/1979",
        "XJ4471920",
        "D2740",
        "#3",
        "555",
        "201-3344",
        "Birchbark",
        "K02.52",
        "clindamycin",
        "abscess",
    ]
    body = (
        "Patient: Delia Renfro, SSN 219-09-9999, DOB 03/14/1979, Subscriber ID XJ4471920.\n"
        "Her cell is (555) 201-3344; 4656 Birchbark Ct. D2740 on #3, K02.52, abscess, on "
        "clindamycin."
    )
    verdict = classifier.classify(mail(body, subject="Delia Renfro"))
    assert verdict.phi
    text = repr(verdict)
    assert not [token for token in sensitive if token in text]


def test_verdict_explains_the_combination(classifier):
    verdict = classifier.classify(mail("Mrs. Okafor's crown on #19 is loose again."))
    assert any(r.startswith("identifier(patient_name)+clinical(") for r in verdict.reasons)
    assert all(f.location in ("subject", "body") for f in verdict.findings)


def test_you_and_money_in_mail_to_an_insurer_is_not_phi(classifier):
    body = (
        "Could you confirm whether you apply the deductible to D4341? "
        "Send it to your claims department."
    )
    verdict = classifier.classify(mail(body, to="Provider Services <ps@insurer.example>"))
    assert not verdict.phi


def test_greeting_matching_the_recipient_address_identifies_them(classifier):
    body = "Hi Tova,\n\nThe abscess is better."
    verdict = classifier.classify(mail(body, to="tova_oroz84@mailbox.example"))
    stranger = classifier.classify(
        mail(body.replace("Tova", "Vera"), to="tova_oroz84@mailbox.example")
    )
    assert verdict.phi and "recipient_addressed" in detectors(verdict)
    # a greeting to someone else does not make the recipient the patient: the named person is
    assert "recipient_addressed" not in detectors(stranger)
    assert stranger.phi and "patient_name" in detectors(stranger)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=3000))
def test_any_bytes_give_a_verdict_and_errors_mean_phi(classifier, raw):
    verdict = classifier.classify(raw)
    assert isinstance(verdict, Verdict)
    assert not verdict.errors or verdict.phi


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.text(max_size=800), subject=st.text(max_size=60))
def test_any_text_is_classified_with_explained_findings(classifier, body, subject):
    verdict = classifier.classify(mail(body, subject=" ".join(subject.split())))
    assert not verdict.errors
    assert verdict.phi == bool(verdict.reasons)
    for finding in verdict.findings:
        assert finding.location == "subject" or finding.location == "body"


def test_crafted_flood_of_matches_fails_closed_early(classifier):
    verdict = classifier.classify(mail("Ab Cd " * (candidates.MAX_MATCHES + 10)))
    assert verdict.phi and verdict.errors == ("match: MatchLimit",)


# ---------------------------------------------------------------- generalisation (issue 8)

DESK = "Mona Reyes <mona@lakeside.example>"
DOCTOR = "Dr. Kai Lund <klund@lakeside.example>"
PRACTICE_BOX = "Lakeside Dental <frontdesk@lakeside.example>"


@pytest.mark.parametrize(
    "body",
    [
        "Yusuf A. wants to know if the night guard is ready",  # given name + initial
        "Xiomara V.'s pano shows a possible cyst lower left.",  # any name + initial + stop
        "Tobias W says the temp came off again, he will come at 4",
        "hal d is on blood thinners, watch the bleeding after the ext",  # lower case
        "pls call back Theo re: the biopsy results, he is worried",  # a lone given name
        "Pedro G. no puede venir, tiene fiebre y dolor de muela",  # Spanish
        "Lab case 3381 for Marguerite came back, the shade is off on #9.",  # case number
        "Joss is here for her crown seat but says it still feels high.",  # any name + verb
        "pls call back Olu A re: his biopsy results, he is worried",  # someone's findings
    ],
)
def test_people_inside_the_practice_with_clinical_detail_are_phi(classifier, body):
    verdict = classifier.classify(mail(body, to=DOCTOR, sender=DESK))
    assert verdict.phi, body
    assert {"patient_name", "case_number", "diagnosis", "procedure"} & detectors(verdict)


@pytest.mark.parametrize(
    "body",
    [
        "Vitamin D levels and Plan B for the flu clinic are on the agenda.",
        "Tomorrow: Jo is out, Kayla covers front desk, lunch at 12:30, staff meeting at 5.",
        "Rep from Acme called, the new scanner demo is Thursday at noon.",
        # a colleague's own procedure: an employee matter
        "Danielle is out tomorrow for her colonoscopy. Her patients moved to your column.",
        "Kayla had her baby last night! Both doing great. Card in the break room.",
    ],
)
def test_look_alike_names_and_staff_chatter_are_not_phi(classifier, body):
    assert not classifier.classify(mail(body, to=DOCTOR, sender=DESK)).phi


def test_demographic_record_without_clinical_words_is_phi(classifier):
    body = "New patient Thursday: Jasmine Cole, 312 Orchard Ave, cell (555) 201-0099."
    verdict = classifier.classify(mail(body, to=DOCTOR, sender=DESK))
    assert verdict.phi and any(r.startswith("demographic record(") for r in verdict.reasons)
    listing = "Recall cards:\nRuth Alder, 9 Pine Rd, Lakeside\nOmar Quist, 44 Hill St, Lakeside"
    assert classifier.classify(mail(listing, to="Mailing <m@cards.example>", sender=DESK)).phi


def test_the_practice_address_block_is_not_a_record(classifier):
    body = (
        "Hi Gloria, see you Thursday at 9:00 AM with Dr. Kai Lund.\n\n"
        "Lakeside Dental\n40 Lake St, Suite 2\n(555) 201-4400"
    )
    assert not classifier.classify(mail(body, to="gloria.e@mailbox.example", sender=PRACTICE_BOX)).phi


@pytest.mark.parametrize(
    "body",
    [
        "Hi Walter, this is a reminder of your visit Thursday at 11:00 AM with Dr. Lund.",
        "Hola Rosa, su cita es el martes a las 8:40 con la Dra. Vega, 600 Calle Mayor.",
        ("Hi Ivo, your appointment at Brookfield Oral Surgery is Monday at 9 with Dr. Pratt, "
        "12 Elm St. They'll call you to confirm."),
        ("Hi Maria, see you Tuesday at 10 with Dr. Lund. Please call to reschedule if you have "
         "a fever or cough."),
        "Hi David, join us for Invisalign night on May 3: free consultations and 10% off!",
    ],
)
def test_appointment_logistics_to_the_patient_are_not_phi(classifier, body):
    assert not classifier.classify(mail(body, to="pt@mailbox.example", sender=PRACTICE_BOX)).phi


@pytest.mark.parametrize(
    "body",
    [
        # post-op instructions to the patient's own address, no name at all
        ("After today: do not eat until the numbness wears off. Take ibuprofen 600 mg every "
        "6 hours for soreness."),
        "Hi Rick, your insurance paid $410 toward the crown and your balance is $236.",
        "Hola, le confirmamos que su endodoncia queda para el jueves; siga con la amoxicilina.",
        "David, the prescription for the antibiotic was sent to the pharmacy on Main.",
    ],
)
def test_mail_to_the_patient_about_their_care_is_phi(classifier, body):
    verdict = classifier.classify(mail(body, to="pt@mailbox.example", sender=PRACTICE_BOX))
    assert verdict.phi and {"recipient_addressed", "patient_name"} & detectors(verdict)


def test_a_patient_writing_to_the_practice_is_identified_by_their_address(classifier):
    patient = "Nina Fox <ninafox@mailbox.example>"
    body = "Hello, I had two fillings on Monday and now my bite feels off. Can you fix it?"
    assert classifier.classify(mail(body, to=PRACTICE_BOX, sender=patient)).phi
    logistics = "Thanks, I will be there. Is there parking behind the building?"
    assert not classifier.classify(mail(logistics, to=PRACTICE_BOX, sender=patient)).phi
    moved = "Hi, I moved, my new address is 2290 Juniper St Apt 5. Thanks, Nina"
    assert classifier.classify(mail(moved, to=PRACTICE_BOX, sender=patient)).phi


@pytest.mark.parametrize(
    "sender,to,body",
    [
        # an employee's own sick note among colleagues
        (DESK, DOCTOR, ("I have a fever and a bad cough so I'm staying home today. Jenna can "
         "cover the front. Sorry for the short notice!")),
        # onboarding: the new employee's own record
        ("Jen Sousa <js@mailbox.example>", DESK, ("Here is what you asked for on the new hire "
         "form: DOB 05/02/1998, 1190 Larkspur Ave. Emergency contact: my mom.")),
        # provider credentialing: the dentist's own birth date and numbers
        (DOCTOR, "Credentialing <cred@plan.example>", ("Recredentialing for Dr. Kai Lund: "
         "NPI 1518027334, DEA BL3829105, DOB 04/19/1979, state license D-11872.")),
        # vendor order with account and PO numbers and an anesthetic
        (DESK, "Orders <orders@supply.example>", ("Account HP-11902, PO 8812: 4 boxes of "
         "Septocaine, 2 cases of gloves. Backorder ETA? Thanks")),
        # IT report
        ("IT <help@itco.example>", DESK, ("Ticket 88213: the backup job on SERVER01 failed, "
         "disk full. Imaging database verified after the fix.")),
        # fictitious training patient
        ("Training <t@pmsoft.example>", DESK, ("Open the demo patient Test, Tina (DOB "
         "01/01/1980) and chart a crown on #3 and a filling on #14.")),
        # de-identified aggregate figures
        (DOCTOR, DESK, ("The de-identified extract has 2,214 rows: A1c, BMI, statin use by age "
         "band. Diabetes A1c > 9: 14%.")),
    ],
)
def test_employees_providers_vendors_it_fiction_and_figures_are_not_phi(
    classifier, sender, to, body
):
    assert not classifier.classify(mail(body, to=to, sender=sender)).phi


def test_matcher_agrees_with_one_group_per_rule():
    """The group-less pass plus the per-partition rule lookup finds the same (rule, start, end)
    as one alternation with a group per rule, for finditer, search and fullmatch."""
    import re2

    from gateway.policy.classifiers import patterns

    reference = re2.compile(patterns._alternation(patterns.RULES, groups=True).encode())

    def rule(match):
        return patterns.RULES[match.lastindex - 1]

    text = (
        b"Patient: Ana Ruiz, DOB 01/02/1980, #14 MOD, Hi Ana, Yusuf A. called, $40 balance. "
        b"Call 555-201-3344 or (555) 201-3345; SSN 219-09-9999, D2740 on #3, K02.52, you, my "
        b"Invoice 4471 from Dental Supply Co, amoxicillin 500 mg, 5 mm pockets UL, Mrs. Okafor"
    )
    matcher = patterns.matcher()
    expected = [(rule(m), *m.span()) for m in reference.finditer(text)]
    assert len(expected) >= 20
    assert list(matcher.finditer(text)) == expected
    for pos in range(0, len(text), 7):
        for endpos in (pos + 5, pos + 40, len(text)):
            found = reference.search(text, pos, endpos)
            want = None if found is None else (rule(found), *found.span())
            assert matcher.search(text, pos, endpos) == want
    for word in text.split() + [b"Intruded", b"abscess", b"you", b"xyzzy"]:
        found = reference.fullmatch(word)
        assert matcher.fullmatch(word) == (None if found is None else rule(found))

def test_matcher_rule_depends_on_the_bytes_beside_a_match():
    """The same matched bytes can belong to different rules when a word boundary, a line
    start or the end of the text differs around them: the per-pass cache must tell them apart."""
    from gateway.policy.classifiers import patterns

    def row(name: str, regex: str) -> patterns.PatternRow:
        return patterns.PatternRow(name, "x", patterns.INTERNAL, patterns.MARKER, regex)

    bounded, after_line, at_end, plain = (
        row("_bounded", r"\bab\b"), row("_line", r"(?m)^ab"), row("_end", r"ab\z"), row("_ab", "ab")
    )
    matcher = patterns.Matcher((bounded, after_line, at_end, plain))
    found = [(rule, start) for rule, start, _ in matcher.finditer(b"xab ab\nabx abyab")]
    assert found == [(plain, 1), (bounded, 4), (after_line, 7), (plain, 11), (at_end, 14)]


def test_matcher_without_the_private_binding_gives_the_same_spans():
    """Another google-re2 release may lack the binding under its wrapper: the public methods
    then give the same group spans."""
    from gateway.policy.classifiers import patterns

    class Public:  # the wrapper's public face only
        def __init__(self, program):
            self.search, self.fullmatch, self.groups = (
                program.search, program.fullmatch, program.groups
            )

    rules = patterns.RULES[:29]
    text = b"Invoice 4471, SSN 219-09-9999, Patient: Ana Ruiz, DOB 01/02/1980"
    for groups in (False, True):
        program = patterns._compile(rules, groups)
        for anchor, spans in (("UNANCHORED", [(0, len(text)), (9, 40)]),
                              ("ANCHOR_BOTH", [(0, 7), (18, 29), (31, 49)])):
            raw, public = patterns._spans(program, anchor), patterns._spans(Public(program), anchor)
            for pos, endpos in spans:
                assert public(text, pos, endpos) == list(raw(text, pos, endpos))


def test_the_detector_list_is_what_the_classifier_reports():
    """``detectors.DETECTORS`` is written out so the daemon need not load the patterns;
    it must stay the rules' detector names plus the three reported outside them."""
    from gateway.policy.classifiers import patterns
    from gateway.policy.classifiers.detectors import DETECTORS

    from_rules = {r.detector for r in patterns.RULES if not r.detector.startswith("_")}
    assert DETECTORS == from_rules | {"recipient_addressed", "radiograph", "dicom"}
