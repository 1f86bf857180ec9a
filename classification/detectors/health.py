"""PHI.FreeText: free text that talks about a person's health.

A lexicon of conditions, medications and procedures (strong terms) and clinical context
words (``diagnosed``, ``prescribed``, ``mg``, ``patient``). A value counts when it holds a
strong term, or two context words. Only free text is read (several words per value).

A column is PHI-bearing when a meaningful minority of its values carry health information:
one support ticket in five naming a medication makes the whole column sensitive. So a
share of ``PHI_FULL_SHARE`` already counts as complete evidence, and at least
``MIN_HEALTH_VALUES`` values must match, so one stray word cannot tag a column. Words that
also describe products (a lithium battery, a brush stroke, a cracked or fractured case)
count only next to a clinical context word.
"""

from __future__ import annotations

import re

from .base import MEDIUM, Finding, PreparedColumn, has_hint

PHI_FULL_SHARE = 0.15  # 15% of free-text values about health: as sure as the lexicon gets
PHI_MIN_SHARE = 0.05
MIN_HEALTH_VALUES = 3
PHI_PROBE_VALUES = 60  # a minority needs a longer look before giving up than a whole column

_CONDITIONS = (
    "diabetes|diabetic|hypertension|asthma|copd|cancer|carcinoma|tumou?r|leukemia|lymphoma|"
    "melanoma|hiv|hepatitis|tuberculosis|pneumonia|bronchitis|influenza|covid(?:-19)?|"
    "depression|depressive|anxiety|bipolar|schizophrenia|adhd|autism|dementia|alzheimer'?s?|"
    "parkinson'?s?|epilepsy|seizures?|myocardial infarction|heart failure|arrhythmia|"
    "atrial fibrillation|angina|migraines?|arthritis|osteoporosis|lupus|multiple sclerosis|"
    "crohn'?s?|colitis|celiac|anemia|anaemia|obesity|hypothyroidism|hyperthyroidism|"
    "kidney disease|renal failure|cirrhosis|allerg(?:y|ies|ic)|eczema|psoriasis|dermatitis|"
    "concussion|sepsis|chlamydia|syphilis|pregnan(?:t|cy)|miscarriage|"
    "insomnia|sleep apnea|anorexia|bulimia|substance abuse|alcoholism|opioid use disorder|"
    "hypercholesterolemia|high blood pressure|high cholesterol|gerd|ulcer|gout|glaucoma|"
    "cataracts?|tinnitus|sclerosis|fibromyalgia|endometriosis|pcos"
)
_MEDICATIONS = (
    "metformin|insulin|lisinopril|amlodipine|atorvastatin|simvastatin|rosuvastatin|losartan|"
    "metoprolol|omeprazole|pantoprazole|levothyroxine|albuterol|salbutamol|prednisone|"
    "ibuprofen|paracetamol|acetaminophen|amoxicillin|azithromycin|ciprofloxacin|doxycycline|"
    "sertraline|fluoxetine|citalopram|escitalopram|bupropion|venlafaxine|quetiapine|"
    "risperidone|olanzapine|diazepam|lorazepam|alprazolam|zolpidem|gabapentin|pregabalin|"
    "tramadol|oxycodone|morphine|codeine|warfarin|apixaban|rivaroxaban|clopidogrel|aspirin|"
    "methotrexate|adalimumab|chemotherapy|radiotherapy|dialysis|antibiotics?|antidepressants?|"
    "statins?|inhaler|epipen|vaccin(?:e|ation)"
)
_PROCEDURES = (
    "biopsy|mri|ct scan|x-ray|ecg|ekg|colonoscopy|mammogram|appendectomy|surgery|"
    "transplant|physiotherapy|psychotherapy|icd-10|icd10|blood test|hba1c"
)
_STRONG_TERMS = re.compile(rf"\b(?:{_CONDITIONS}|{_MEDICATIONS}|{_PROCEDURES})\b", re.I)
_CONTEXT_WORDS = re.compile(
    r"\b(?:diagnos(?:is|ed|es)|prescribed|prescription|dosage|\d+ ?mg|mg/dl|mmhg|symptoms?|"
    r"patient|clinic(?:al)?|treatment|treated|therapy|chronic|acute|medication|medical history|"
    r"history of|referred|admitted|discharged|follow-up|prognosis|condition|mental health)\b",
    re.I,
)
# Health words with an everyday product sense; they count as context words, not alone.
_AMBIGUOUS_TERMS = re.compile(r"\b(?:stroke|lithium|fractured?|infections?|std)\b", re.I)
_ICD10 = re.compile(r"\b[A-TV-Z]\d{2}\.\d{1,2}\b")
_HINT_TOKENS = (
    "diagnosis",
    "diagnoses",
    "condition",
    "conditions",
    "symptoms",
    "medical",
    "clinical",
    "medication",
    "medications",
    "prescription",
    "treatment",
    "allergies",
    "allergy",
    "icd",
    "patient",
    "health",
    "medhistory",
    "anamnesis",
)


def _mentions_health(text: str) -> bool:
    if _STRONG_TERMS.search(text) or _ICD10.search(text):
        return True
    context = len(_CONTEXT_WORDS.findall(text)) + len(_AMBIGUOUS_TERMS.findall(text))
    return context >= 2


def _matched_term(text: str) -> str:
    match = (
        _STRONG_TERMS.search(text)
        or _ICD10.search(text)
        or _CONTEXT_WORDS.search(text)
        or _AMBIGUOUS_TERMS.search(text)
    )
    return f"… {match.group(0).lower()} …" if match else "…"


def _is_prose(text: str) -> bool:
    """Four or more words, and either long or mostly lower case (not a list of Names)."""
    words = text[:400].split()
    if len(words) < 4 or not any(char.isalpha() for char in text):
        return False
    lower = sum(1 for word in words if word[0].islower())
    return len(words) >= 8 or lower / len(words) >= 0.4


def is_free_text(column: PreparedColumn) -> bool:
    """Notes, comments, descriptions: at least half of the values read as prose."""
    if column.free_text is None:
        texts = column.texts[:50]
        column.free_text = (
            bool(texts)
            and column.type_family in ("text", "json")
            and sum(1 for text in texts if _is_prose(text)) / len(texts) >= 0.5
        )
    return column.free_text


def detect_health_text(column: PreparedColumn) -> list[Finding]:
    if not is_free_text(column):
        return []
    matched = checked = 0
    examples: list[str] = []
    for text in column.texts:
        if checked == PHI_PROBE_VALUES and matched == 0:
            break
        checked += 1
        if _mentions_health(text):
            matched += 1
            if len(examples) < 3:
                examples.append(_matched_term(text))
    if matched < MIN_HEALTH_VALUES:
        return []
    return [
        Finding(
            tag="PHI.FreeText",
            detector="health_lexicon",
            matched=matched,
            checked=checked,
            strength=MEDIUM,
            examples=examples,
            name_hint=has_hint(column, _HINT_TOKENS, ("diagnos", "medical", "clinical")),
            full_share=PHI_FULL_SHARE,
            min_share=PHI_MIN_SHARE,
        )
    ]
