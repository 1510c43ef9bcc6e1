"""The work of the audiobook pipeline: plain functions, plus thin Prefect wrappers in `tasks.prefect_tasks`.

Data flow (each stage takes a typed value and returns one):

    manifest.load_manifest(path)            -> Manifest
    documents.read_chapters(manifest)       -> list[ChapterText]
    plan.plan_book(manifest, chapters, eng) -> BookPlan (chapters of Chunks)
    engines.get_engine(name).synthesize()   -> Clip               (cached by cache.chunk_key)
    book.assemble_chapter_audio(...)        -> ChapterAudio (44.1 kHz WAV, ACX loudness, streamed)
    encode.encode_mp3 / encode.encode_m4b   -> files in output/<book>/
    report.write_report(...)                -> report.json
"""
