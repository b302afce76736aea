"""Word lists behind the PHI detectors: how dental and medical offices write about
treatment, diagnoses, medications and money, plus the words that are *not* names.

Kept apart from ``patterns`` so the vocabulary can be reviewed (and extended) by
someone who knows the clinic without reading regular expressions. Entries are
regex fragments (lower case, matched case-insensitively, whole words).
"""

# Treatment: procedures, appliances, imaging, anaesthesia.
PROCEDURES = (
    r"crowns?", r"root canals?", r"rct", r"endo(?:dontic)? (?:therapy|treatment|tx)",
    r"re-?treatment", r"pulpotomy", r"pulpectomy", r"apicoectomy", r"extractions?",
    r"extracted", r"(?:surgical )?extraction", r"srp", r"scaling and root planing",
    r"root planing", r"deep cleaning", r"periodontal maintenance", r"perio maintenance",
    r"gingivectomy", r"gum graft", r"connective tissue graft", r"bone grafts?", r"bone grafting",
    r"sinus (?:lift|augmentation)", r"ridge preservation", r"socket preservation", r"implants?",
    r"implant crown", r"abutments?", r"fillings?", r"composites?", r"amalgams?", r"restorations?",
    r"bridges?", r"pontics?", r"veneers?", r"dentures?", r"partial denture",
    r"flipper", r"inlays?", r"onlays?", r"sealants?", r"build-?ups?", r"core build-?up",
    r"post and core", r"night ?guard", r"occlusal guard", r"mouth ?guard", r"splint(?:ed|ing)?",
    r"reimplant(?:ed|ation)?", r"orthodontic treatment", r"braces", r"invisalign",
    r"aligners", r"retainer", r"brackets", r"archwire", r"expander",
    r"temp(?:orary)? (?:crown|bridge|filling)", r"frenectomy", r"biopsy", r"incision and drainage",
    r"sedation", r"iv sedation", r"nitrous(?: oxide)?", r"general anesthesia",
    r"general anaesthesia", r"local anesthetic", r"sdf", r"silver diamine fluoride",
    r"fluoride varnish", r"space maintainer", r"stainless steel crown", r"ssc",
    r"wax try-?in", r"try-?in", r"impressions? for", r"crown prep",
    r"debridement", r"full mouth debridement", r"occlusal adjustment",
    r"bite adjustment", r"exposure and bonding", r"orthognathic surgery", r"jaw surgery",
    r"oral surgery", r"surgery", r"post-?op", r"pre-?op", r"sutures?", r"stitches",
    r"treatment plan", r"tx plan", r"pano(?:ramic)?(?: x-?ray| image| radiograph)?",
    r"bitewings?", r"bwx?", r"4bwx", r"fmx", r"full mouth (?:series|x-?rays)", r"periapicals?",
    r"cbct", r"x-?rays?", r"radiographs?",
)

# Findings, conditions, symptoms, relevant medical history.
DIAGNOSES = (
    r"caries", r"cavit(?:y|ies)", r"decay(?:ed)?", r"periodontitis", r"gingivitis",
    r"periodontal disease", r"gum disease", r"peri-?implantitis", r"abscess(?:ed)?",
    r"fistula", r"fractured?", r"cracked(?: tooth| cusp)?", r"cracked", r"broken tooth",
    r"infection", r"infected", r"toothache", r"pain(?:ful)?", r"throbbing", r"aching",
    r"aches", r"sensitivity", r"sensitive to (?:cold|heat|hot|sweets|biting|pressure)",
    r"really sensitive", r"swelling", r"swollen", r"bleeding", r"oozing", r"bleeding gums", r"bone loss",
    r"impacted", r"dry socket", r"alveolar osteitis", r"pulpitis",
    r"necrotic", r"non-?vital", r"lesion", r"radiolucency", r"widened pdl",
    r"percussion tender", r"tender to (?:percussion|biting)", r"mobility", r"mobile tooth",
    r"malocclusion", r"crossbite", r"overbite", r"tmj", r"tmd", r"bruxism",
    r"bruxer", r"attrition", r"hypoplasia",
    r"fluorosis", r"trauma", r"avulsed", r"avulsion", r"luxation", r"knocked out",
    r"early childhood caries", r"ecc", r"oral cancer", r"leukoplakia", r"thrush",
    r"ulcers?", r"canker sores?", r"dry mouth", r"xerostomia", r"sleep apnea", r"osa",
    r"allerg(?:y|ies|ic)", r"allergic reaction", r"rash", r"hives", r"anaphylaxis",
    r"diabetes", r"diabetic", r"a1c", r"hypertension", r"high blood pressure",
    r"heart (?:condition|disease|murmur|attack|valve)", r"artificial (?:heart )?valve",
    r"joint replacement", r"hip replacement", r"knee replacement", r"stroke",
    r"pregnan(?:t|cy)", r"weeks pregnant", r"trimester", r"cancer", r"chemo(?:therapy)?",
    r"radiation therapy", r"hiv", r"hepatitis", r"asthma", r"epilepsy", r"seizures?",
    r"graves disease", r"thyroid", r"kidney disease", r"dialysis", r"osteoporosis",
    r"mronj", r"osteonecrosis", r"anxiety", r"anxious", r"dental phobia", r"nervous",
    r"autism", r"adhd", r"dementia", r"parkinson'?s", r"bleeding disorder", r"hemophilia",
    r"clot", r"blood thinners?", r"frankl \d", r"medical history", r"health history",
    r"medical alert", r"latex allergy", r"smoker", r"vaping", r"healing well",
    r"not healing", r"numbness", r"paresthesia", r"came off", r"fell out", r"chipped",
    r"(?:tooth|teeth|crown|filling|bridge) (?:\w+ ){0,3}?(?:put back in|knocked out|fell out|came out|broke|"
    r"chipped|cracked|came loose|is loose|feels loose|hurts|aches|is sensitive)",
)

# Medications, premedication, prescriptions.
MEDICATIONS = (
    r"amoxicillin", r"augmentin", r"penicillin(?: vk)?", r"clindamycin", r"azithromycin",
    r"z-?pak", r"cephalexin", r"keflex", r"doxycycline", r"metronidazole", r"flagyl",
    r"antibiotics?", r"premed(?:ication|icate|icated)?", r"pre-?medicat(?:e|ion|ed)",
    r"antibiotic prophylaxis", r"prophylactic antibiotics?", r"ibuprofen", r"advil",
    r"motrin", r"acetaminophen", r"tylenol", r"naproxen", r"aleve", r"hydrocodone",
    r"vicodin", r"norco", r"oxycodone", r"percocet", r"tramadol", r"codeine",
    r"opioids?", r"chlorhexidine", r"peridex", r"magic mouthwash", r"prednisone",
    r"medrol", r"dexamethasone", r"diphenhydramine", r"benadryl", r"lidocaine",
    r"articaine", r"septocaine", r"halcion", r"triazolam", r"valium", r"diazepam",
    r"xanax", r"alprazolam", r"eliquis", r"apixaban", r"xarelto", r"warfarin",
    r"coumadin", r"plavix", r"clopidogrel", r"aspirin therapy", r"bisphosphonates?",
    r"fosamax", r"alendronate", r"prolia", r"boniva", r"metformin", r"insulin",
    r"lisinopril", r"amlodipine", r"atorvastatin", r"levothyroxine", r"synthroid",
    r"methimazole", r"fluconazole", r"nystatin", r"acyclovir", r"valacyclovir",
    r"prescriptions?", r"rx", r"\d{1,4} ?mg", r"medications?", r"meds",
)

# Payment for health care (HIPAA counts it as PHI together with a person).
PAYMENT = (
    r"balances?", r"billing statement", r"past[- ]due", r"overdue", r"co-?pays?",
    r"co-?insurance", r"deductibles?", r"eob", r"explanation of benefits", r"claims?",
    r"e-?claims?", r"denied", r"denials?", r"pre-?auth(?:orization)?s?",
    r"pre-?determinations?", r"predetermination", r"refunds?", r"credit on (?:your|the|his|her) account",
    r"paid (?:their|its|our|your) share", r"insurance (?:paid|payment|portion|estimate)",
    r"patient portion", r"your (?:portion|share|responsibility)", r"out[- ]of[- ]pocket",
    r"write-?offs?", r"payment plan", r"responsible party", r"guarantor", r"amount due",
    r"missing tooth clause", r"payment (?:of \$|received|for (?:your|his|her|the) (?:visit|treatment|crown|account))",
    r"paid in full", r"amount paid", r"receipt for", r"frequency limitation", r"annual maximum", r"benefits? (?:used|remaining)",
)

# Words that never start or end a person's name (sentence starters, greetings,
# calendar words, places, business words). Lower case.
NOT_NAME_WORDS = frozenset("""
a about after again all also am an and any are as at back be been before best but by call can
cheers could dear dental dentistry dentist did do does done dr email for from get go good got
had has have he hello her here hey hi him his how i if in is it its just kind kindly let like
many may me more most much my new next no not now of office ok okay on one or our out over
per please pm am re regards respectfully she should sincerely so some sorry still subject sure
thank thanks that the their them then there these they this those to today tomorrow too two
up us very was we well were what when where which while who why will with would yes yesterday
you your yours fw fwd hope best warmly cordially attached following note notes reminder
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
street st avenue ave road rd drive dr lane ln way court ct boulevard blvd suite ste park
station city county valley north south east west upper lower left right
clinic lab laboratory studio surgery orthodontics endodontics periodontics associates group
center centre practice partners health insurance dental family pediatric smile smiles care
team staff front desk billing manager coordinator hygienist assistant doctor patient patients
portal financial specialist services service support helpdesk office inc llc pc pllc co corp
company bank school hospital university college academy club society association
visit summary summaries referral referrals records record chart form forms plan plans claim
lab slip case consult consultation exam appointment appointments schedule column invoice order
insurance benefits dental delta metlife cigna aetna guardian humana ameritas united healthcare
principal blue cross shield medicaid medicare tricare
completed still what found numbness date clinician reason findings medical urgency insurance
hygiene privacy information confidential ecc pa bw bwx fmx cdt icd dds dmd rdh md np pa-c
new year years happy merry holiday holidays christmas thanksgiving easter
day days week weeks month months night event events program programs update updates newsletter
education appreciation financing finance reviews review satisfaction experience experiences survey
communication communications safety rights instructions information registration intake history
comfort success stories story testimonials spotlight relations advocate liaison account accounts
welcome congratulations congrats meet introducing announcing join save book free special offer
learn read click visit our first last full middle preferred emergency emergencies contact
""".split())

# Organisation words: a capitalised pair followed by one of these names a business.
ORG_WORDS = frozenset("""
dental dentistry dentists studio lab labs laboratory laboratories clinic clinics surgery
orthodontics endodontics periodontics prosthetics prosthodontics implants associates group
center centre practice partners health healthcare insurance supply supplies distribution
inc llc pc pllc company corp services tech pharmacy hospital medical university college
school club society association foundation bank team staff office
""".split())

# Attachment names that mark a dental image of a patient.
IMAGE_NAME_WORDS = (
    "radiograph", "xray", "x-ray", "x_ray", "pano", "panoramic", "opg", "bitewing", "bwx",
    "bw_", "bw-", "fmx", "periapical", "pa_", "pa-", "intraoral", "intra-oral", "ceph",
    "cbct", "ct_scan", "ctscan", "dicom", "dcm", "caries", "retracted", "perio", "preop",
    "pre-op", "postop", "post-op",
)
