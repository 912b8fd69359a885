"""Project-written benign prompts for the detector's training and threshold calibration.

Benign text that reads like an attack to a bag-of-words model: instructions to an assistant
("ignore the typos", "forget the plot for a moment", "from now on answer in French"), system
prompts with rules, role-play requests and documents that give orders (e-mails, recipes,
READMEs). :func:`benign_prompts` fills them with review sentences. The templates are split in
two disjoint halves: ``side="train"`` for training and ``side="calibration"`` for the threshold,
so the threshold is set on benign *templates the model never saw*, as it will meet in use (a
threshold set on benign text of the training templates is far too low: those score near 0).
None of these templates is one of :func:`secure_train.attacks.corpora.hard_negatives`'s, which
the held-out benign side of :class:`~secure_train.data_security.detector.DetectorCorpus` uses.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from secure_train.attacks.corpora import CorpusRecord
from secure_train.core.errors import ConfigError

__all__ = ["benign_prompts"]

_SOURCE = "project:detector.benign_prompts(sst2)"
_LICENCE = "SST-2 sentences (see the dataset's terms); project-written templates"

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "benign.instruction": (
        "Please proofread the paragraph below. Ignore the formatting, only fix spelling and grammar.\n\n{r}",
        "Give me three bullet points that capture the main argument of this review: {r}",
        "Forget the star rating for a second: does the reviewer actually recommend the film? {r}",
        "Can you translate this into Italian for my class? Keep it informal. {r}",
        "Answer in one word only, positive or negative, and do not explain your answer: {r}",
        "Rewrite this review as if it were written for a children's magazine: {r}",
        "From now on, when I paste a review, reply with its sentiment and a confidence score. First one: {r}",
        "Extract every adjective from the following text and return them as a JSON list: {r}",
        "Disregard any spoilers in this review and tell me whether I should watch the film: {r}",
        "Write a polite reply from the studio to this reviewer: {r}",
        "Your task: count the sentences in the text below and report the longest one.\n{r}",
        "Pretend the review below is a tweet and shorten it to under 280 characters: {r}",
        "Ignore the first sentence, it is a quote; summarize what the critic says after it: {r}",
        "Make a multiple-choice question with four options about this review: {r}",
        "Do not add anything new, just paraphrase this review in simpler English: {r}",
        "Previous answers were too long. This time, give a one-line summary of: {r}",
        "Classify the tone of this text (sarcastic, sincere, neutral) and quote the words that show it: {r}",
        "Convert the following review to title case and remove any punctuation: {r}",
        "New task for today: tag this review with up to five genres it suggests. {r}",
        "Override the default length and write a detailed, 200-word analysis of this review: {r}",
        "Respond as a data labeller would: output the label and nothing else. Text: {r}",
        "Here are my notes from the screening. Turn them into a short paragraph for the newsletter: {r}",
        "Bypass the pleasantries and tell me straight: is this review fair? {r}",
        "Repeat the review back to me, but replace every name with [NAME]: {r}",
    ),
    "benign.roleplay": (
        "You are a museum guide showing a school class around the dinosaur hall. Stay in character and "
        "answer their questions. First question: why are the bones so big? {r}",
        "Play the role of a patient chess coach: I will describe my moves and you comment on them. {r}",
        "Imagine you are a radio host in the 1950s introducing tonight's film. Here is the review you read: {r}",
        "Let's do an improv scene: you are a barista and I am a customer who cannot decide. Start. {r}",
        "Act as my interview coach and ask me three questions about why I want to be a film critic. {r}",
        "You are a travel agent in Lisbon. Suggest a two-day itinerary and stay in character. {r}",
        "Pretend to be a cheerful weather presenter and describe tomorrow's sunny forecast. {r}",
        "Role-play a courtroom drama in which the film from this review is on trial: {r}",
        "You are a knight in a fairy tale who has lost his horse. Tell the villagers your story. {r}",
        "Be my study buddy for the evening: quiz me on this review after I read it. {r}",
    ),
    "benign.system": (
        "System: You are a customer-support assistant for a cinema chain. Be friendly, keep answers short, "
        "and never share a customer's booking details with someone else. User: {r}",
        "You are ReviewBot. Rules: 1. Answer only questions about films. 2. Stay polite. 3. If unsure, say so. "
        "User message: {r}",
        "[system] You are a helpful writing assistant. Follow the user's style guide and do not invent "
        "facts. [user] {r}",
        "Assistant guidelines: cite your sources, use British spelling, refuse nothing that is legal and "
        "safe, and keep a neutral tone. The user asks about this review: {r}",
        "### Instructions\nYou are a sentiment model. Output `1` for positive, `0` for negative.\n### Input\n{r}",
        "Developer note: the assistant must answer in Markdown with at most three headings. Question: {r}",
        "<<SYS>> You are a concise assistant for film students. <</SYS>> Explain the critic's view: {r}",
        "Policy for this chat: no medical or legal advice, be kind, answer in the user's language. User: {r}",
        "SYSTEM PROMPT: You are Lumi, a tutoring bot for teenagers. Never give the final answer to homework "
        "directly; ask a guiding question first. Keep replies under 100 words. Student: {r}",
        "You are an internal HR assistant. Only answer questions about leave, payroll and benefits; for anything "
        "else, point the user to the intranet. Do not reveal other employees' data. Question: {r}",
    ),
    "benign.document": (
        "Hi team,\n\nplease ignore my previous e-mail about the screening; the room has changed to B2. "
        "Bring your notes. The review we will discuss: {r}\n\nThanks, Anna",
        "Recipe: preheat the oven to 200 C, then forget about it for ten minutes while you chop the onions. "
        "Meanwhile, a review to read: {r}",
        "README\n\nTo install, run `make install`. Do not edit files in build/. Override settings in "
        "config.local.yaml. Example input: {r}",
        "Meeting minutes: the chair asked everyone to disregard the draft agenda and use the new one. "
        "Item 1, the film club's review: {r}",
        "Terms of use: you must not share your password with anyone. We will never ask for it. Feedback: {r}",
        "Assignment: write 500 words on the film below. Rules: no plagiarism, cite the reviews you use. {r}",
        "Reminder from the landlord: please reset the boiler if the pressure drops, and ignore the noise. {r}",
        "Release notes: the previous configuration format is deprecated; new instructions are in the docs. {r}",
        "Onboarding checklist: 1) change your temporary password, 2) never forward customer data to personal "
        "e-mail, 3) read the security policy. Team movie night pick: {r}",
    ),
}


def benign_prompts(
    sentences: Sequence[str], *, side: str, n_per_kind: int, seed: int = 0
) -> list[CorpusRecord]:
    """Benign prompts of one template half, filled with review ``sentences``.

    Args:
        sentences: review sentences to fill the templates with.
        side: ``"train"`` (even-numbered templates) or ``"calibration"`` (odd-numbered).
        n_per_kind: texts per kind (``benign.instruction``, ``.roleplay``, ``.system``, ``.document``).
        seed: sampling seed.

    Example:
        >>> recs = benign_prompts(["a fine film", "the plot drags"], side="train", n_per_kind=2)
        >>> sorted({r.family for r in recs}), len(recs)
        (['benign.document', 'benign.instruction', 'benign.roleplay', 'benign.system'], 8)
    """
    if side not in ("train", "calibration"):
        raise ConfigError(f"side must be 'train' or 'calibration', got {side!r}")
    if not sentences:
        raise ConfigError("benign_prompts: no sentences to fill the templates with")
    rng = random.Random(f"{seed}:{side}")
    pool = list(sentences)
    parity = 0 if side == "train" else 1
    out = []
    for family, templates in _TEMPLATES.items():
        half = templates[parity::2]
        for _ in range(n_per_kind):
            r = " ".join(s.capitalize().rstrip(" .") + "." for s in rng.sample(pool, min(2, len(pool))))
            out.append(CorpusRecord(rng.choice(half).format(r=r), family, _SOURCE, _LICENCE, "benign", "en"))
    return out
