"""The work of the audiobook pipeline: plain functions, plus thin Prefect wrappers in `tasks.prefect_tasks`.

Data flow (each stage takes a typed value and returns one; tests/test_layers.py checks these names):

    manifest.load_manifest(path)               -> Manifest
    source.read_source(manifest)               -> BookSource (documents read: chapters, skipped, metadata)
    plan.make_plan(manifest, ...)              -> BookPlan (chapters of Chunks, keyed by cache.chunk_key)
    synth.synthesize_batch(chunks, job)        -> BatchResult (engines.get_engine(name), takes judged by
                                                  verify.judge_take, stored in the chunk cache)
    book.assemble_chapter_audio(...)           -> ChapterAudio (44.1 kHz WAV, ACX loudness, streamed)
    book.publish_book(...)                     -> files in output/<book>/ (encode.encode_mp3, encode.encode_m4b,
                                                  captions.caption_jobs, readalong.build_epub)
    report.build_report(...) / write_report    -> BookReport, report.json
"""
