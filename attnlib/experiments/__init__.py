"""Each chapter's experiment scaffolding: its task, its toy models, its data. Not the mechanism.

- ``retrieval``          ch 3: associative recall, the one-head model that learns it (scaled vs unscaled)
- ``partner``            ch 4: the partner task; tied dot, bilinear and projected (Transformer) heads
- ``long_range``         ch 7: the remember-one-token task, attention and recurrent classifiers, tuned per model
- ``paths``              ch 7: gradients by distance, dependency patterns, path lengths, MAC counts
- ``minilm``             ch 9: all-MiniLM-L6-v2 rebuilt on attnlib's layers, loaded from its weights
- ``head_analysis``      ch 9: parked mass, mass-weighted distance, value-weighted attention, frozen passages
- ``book_text``          ch 10: the book's own text as a corpus, a character tokenizer, batches
- ``language_modelling`` ch 10: training and evaluating language models, the LSTM to compare with
- ``memory``             ch 8: peak memory, bytes read and written, bytes kept for backward (counters)
- ``translation_task``   ch 11: English dates to Chinese, the true word alignment, a train/validation/test split
- ``translation_model``  ch 11: the encoder-decoder Transformer (and its one-vector baseline), decoding, scoring
- ``modern``             ch 12: a rotary decoder with grouped key/value heads; key-value recall, bigram-backcopy

Import them by module, for example ``from attnlib.experiments import long_range``.
"""
