"""Text for the voice: the spoken form, sentences, chunks, prompts and the pronunciation lexicon.

Pure functions, no I/O except reading the packaged abbreviation lists (and lexicon files, when asked).
All lengths are in characters (Python code points), never bytes or tokens.

    normalize_text(raw, urls=, language=)     -> one paragraph's spoken form: what the engine reads
    normalize_heading(title, urls=, language=) -> a chapter title as spoken ("Chapter Four. The Storm.")
    split_sentences(text, language=)         -> sentences; " ".join(them) == text for normalised text
    pack_chunks(sentences, max_chars)         -> chunks of <= max_chars characters
    strip_prompts(text), has_prompt(text)     for engines that cannot take "[...]" prompts
    book_lexicon(manifest, voices_dir)        -> Lexicon; .apply(text), .apply_to_chunks(chunks, max_chars)
    clean_text(raw)                           -> Unicode/quotes/dashes only, for an engine's own cleaning

Modules: clean (characters), markup, urls, casing (drop caps, headings), abbreviations, roman,
spoken (numbers and symbols), normalize (the steps in order), headings, sentences, chunks, lexicon.
A change to a rule that alters the spoken form of unchanged text must bump tasks.cache.PIPELINE_VERSION.
"""

from tasks.text.chunks import has_prompt, pack_chunks, strip_prompts
from tasks.text.clean import clean_text
from tasks.text.headings import normalize_heading
from tasks.text.lexicon import Lexicon, book_lexicon, load_lexicon_file
from tasks.text.normalize import normalize_text
from tasks.text.sentences import split_sentences
from tasks.text.urls import UrlMode

__all__ = [
    "Lexicon", "UrlMode", "book_lexicon", "clean_text", "has_prompt", "load_lexicon_file",
    "normalize_heading", "normalize_text", "pack_chunks", "split_sentences", "strip_prompts",
]
