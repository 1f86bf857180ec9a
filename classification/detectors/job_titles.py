"""Job titles: a column of them is neither people nor firms, which the English model often
reads them as ("Regional Sales Coordinator" as PERSON, "Corporate Program Planner" as ORG).

A title names a role with one of a closed set of nouns (manager, analyst, coordinator),
in English, which titles of many countries borrow, and in the languages whose titles the
model misreads most; a column where most values carry one is a column of titles.
"""

from __future__ import annotations

import re

from .base import PreparedColumn

# fmt: off
_ROLE_NOUNS = (
    # English
    "manager", "engineer", "analyst", "director", "officer", "coordinator", "administrator",
    "specialist", "consultant", "assistant", "representative", "executive", "designer",
    "developer", "architect", "technician", "agent", "associate", "supervisor", "planner",
    "producer", "strategist", "liaison", "facilitator", "orchestrator", "accountant",
    "clerk", "programmer", "receptionist", "advisor", "adviser", "owner", "lead",
    # Spanish, Portuguese, Italian, French
    "gerente", "ingeniero", "engenheiro", "ingegnere", "ingénieur", "analista", "analyste",
    "diretor", "directeur", "direttore", "coordinador", "coordenador", "coordinatore",
    "coordinateur", "administrador", "amministratore", "administrateur", "especialista",
    "specialista", "spécialiste", "consultor", "consulente", "asistente", "assistente",
    "representante", "rappresentante", "représentant", "ejecutivo", "executivo",
    "diseñador", "desarrollador", "desenvolvedor", "sviluppatore", "développeur",
    "arquitecto", "arquiteto", "architetto", "architecte", "técnico", "tecnico",
    "technicien", "supervisore", "superviseur", "planificador", "planejador", "productor",
    "produtor", "produttore", "producteur", "estratega", "estrategista", "facilitador",
    "jefe", "chefe", "atendente", "responsable", "responsabile",
    # German
    "berater", "leiter", "direktor", "koordinator", "referent", "sachbearbeiter",
    "entwickler", "techniker", "assistent", "spezialist", "ingenieur",
    # Greek
    "συντονιστής", "συντονιστή", "εκπρόσωπος", "παραγωγός", "ειδικός", "συνεργάτης",
    "διευθυντής", "μηχανικός", "αναλυτής", "σύμβουλος", "βοηθός", "υπεύθυνος",
    "σχεδιαστής", "τεχνικός", "επόπτης",
    # Russian
    "менеджер", "инженер", "аналитик", "директор", "сотрудник", "специалист", "консультант",
    "ассистент", "представитель", "администратор", "координатор", "дизайнер",
    "разработчик", "архитектор", "техник", "агент", "руководитель", "планировщик",
    "продюсер", "стратег",
    # Swedish, Norwegian, Danish
    "konsult", "konsulent", "representant", "arkitekt", "samordnare", "utvecklare",
    "ansvarig", "rådgiver", "rådgivare",
)
# fmt: on
# casefolded as the values are: Greek's final sigma (ς) folds to σ
ROLE_NOUNS = frozenset(noun.casefold() for noun in _ROLE_NOUNS)
JOB_TITLE_SHARE = 0.6
_WORD = re.compile(r"[^\W\d_]+")


def is_job_title(text: str) -> bool:
    """Two to six words, one of them a role noun ("Senior Data Analyst", "Jefe de Ventas")."""
    words = _WORD.findall(text.casefold())
    return 2 <= len(words) <= 6 and any(word in ROLE_NOUNS for word in words)


def job_title_column(column: PreparedColumn) -> bool:
    head = column.texts[:50]
    return bool(head) and sum(1 for text in head if is_job_title(text)) >= JOB_TITLE_SHARE * len(
        head
    )
