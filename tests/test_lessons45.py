"""Lessons 4-5 and wordvectors: the library (ratings, text, GloVe, collaborative-filtering models), bad input,
and the three notebooks run end to end on the synthetic stand-ins."""

import os
import re

import nbformat
import nbtools
import numpy as np
import pytest

from dl1.data.datasets import glove as glove_ds
from dl1.data.datasets import imdb as imdb_ds
from dl1.data.datasets import movielens as movielens_ds
from dl1.data.glove import embedding_matrix, load_glove, read_glove, save_glove
from dl1.data.ratings import read_movies, read_ratings, remap_ids, split_ratings, top_ids
from dl1.data.text import Tokenizer, pad_sequences, read_imdb, text_to_word_sequence
from dl1.io.errors import DataError, DL1Error

NOTEBOOKS = {"lesson4": ("path", "n_factors", "epochs", "dot_epochs", "bias_epochs", "neural_epochs", "batch_size"),
             "lesson5": ("path", "glove", "vocab_size", "seq_len", "epochs", "single_epochs", "conv1_epochs",
                         "glove_epochs", "multi_epochs", "lstm_epochs", "batch_size"),
             "wordvectors": ("glove", "n_words")}


@pytest.fixture(scope="module")
def ml(module_tmp):
    path = module_tmp.mktemp("ml") / "ml-small"
    movielens_ds.synthesize(str(path), seed=0, n=12000)
    return path


@pytest.fixture(scope="module")
def imdb(module_tmp):
    path = module_tmp.mktemp("imdb") / "imdb"
    imdb_ds.synthesize(str(path), seed=0, n=500)
    return path


@pytest.fixture(scope="module")
def glove(module_tmp):
    path = module_tmp.mktemp("glove") / "glove"
    glove_ds.synthesize(str(path), seed=0)
    return path / "glove.6B.50d.txt"


# ---- ratings -----------------------------------------------------------------------------------------------
def test_ratings_remap_and_split(ml):
    ratings = read_ratings(str(ml))
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert ratings.rating.between(0.5, 5).all() and ((ratings.rating * 2) % 1 == 0).all()
    out, ids = remap_ids(ratings)
    assert (ids["userId"] == ratings.userId.unique()).all()
    assert out.userId.min() == 0 and out.userId.max() == ratings.userId.nunique() - 1
    assert out.movieId.max() == ratings.movieId.nunique() - 1
    # the index maps back to the original id, row by row
    assert (ids["movieId"][out.movieId.to_numpy()] == ratings.movieId.to_numpy()).all()
    trn, val = split_ratings(out, 0.2, seed=42)
    assert len(trn) + len(val) == len(out) and 0.15 < len(val) / len(out) < 0.25
    np.random.seed(42)
    assert (trn.index == out[np.random.rand(len(out)) < 0.8].index).all()  # the course's mask, seeded
    top = top_ids(out, "movieId", 5)
    counts = out.groupby("movieId").rating.count()
    assert counts[top[0]] == counts.max()
    names = read_movies(str(ml))
    assert set(ratings.movieId) <= set(names.movieId)


@pytest.mark.parametrize("content, problem", [
    ("userId,movieId,timestamp\n1,2,3\n", ": missing column rating (has userId, movieId, timestamp; expected "
                                          "userId,movieId,rating)"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,3\n1,3,good,4\n", " line 3: rating 'good' is not a number"),
    ("userId,movieId,rating,timestamp\n1,2,-7,3\n1,3,4,4\n1,4,99,5\n", " line 2: rating '-7' is outside 0.5-5 "
                                                                      "(and 1 more: line 4)"),
    ("userId,movieId,rating,timestamp\n1,2,inf,3\n1,3,nan,4\n", " line 2: rating 'inf' is not a number "
                                                                 "(and 1 more: line 3)"),
    ("userId,movieId,rating,timestamp\n1.7,2,4,3\n", " line 2: userId '1.7' is not a whole number (an id)"),
    ("userId,movieId,rating,timestamp\n-1,2,4,3\n", " line 2: userId '-1' is outside 0-9.22337e+18"),
    ("userId,movieId,rating,timestamp\n99999999999999999999,2,4,3\n",
     " line 2: userId '99999999999999999999' is too large (more than 2**63)"),
    ("userId,movieId,rating,timestamp\n1,2,4,3,7\n", ": more fields than the header's 4 on line 2"),
    ("userId,movieId,rating,rating\n1,2,4,3\n", ": the header names a column twice (rating)"),
    ("", ": the file is empty"),
    ("userId,movieId,rating\n", ": the file has a header but no rows"),
])
def test_bad_ratings_file_is_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        read_ratings(str(path))
    assert str(e.value) == f"{path}{problem}"


def test_ratings_rows_ending_in_a_comma_and_large_ids_are_read_as_meant(tmp_path):
    path = tmp_path / "ratings.csv"
    big = 2**53
    path.write_text(f"userId,movieId,rating,timestamp\n{big + 1},7,4.5,964982703,\n\n{big},8,0.5,964981247,\n")
    ratings = read_ratings(str(path))
    assert ratings.to_dict("list") == {"userId": [big + 1, big], "movieId": [7, 8], "rating": [4.5, 0.5],
                                       "timestamp": [964982703, 964981247]}
    assert remap_ids(ratings)[0].userId.tolist() == [0, 1]  # two users, not one
    assert read_ratings(str(path), rating_range=(0, 10)).rating.tolist() == [4.5, 0.5]
    with pytest.raises(DataError, match=r"rating_range must be \(low, high\) with low < high, not \(5, 1\)"):
        read_ratings(str(path), rating_range=(5, 1))
    with pytest.raises(DataError, match="valid_fraction must be between 0 and 1, not 0"):
        split_ratings(ratings, 0)


# ---- text --------------------------------------------------------------------------------------------------
def test_tokenizer_matches_keras_semantics():
    texts = ["The cat sat on the mat.", "The dog ate my homework!", "the cat, the dog"]
    tok = Tokenizer()
    tok.fit_on_texts(texts)
    assert tok.word_index["the"] == 1 and tok.word_index["cat"] == 2 and tok.word_index["dog"] == 3
    assert tok.document_count == 3 and tok.word_counts["the"] == 5
    assert tok.texts_to_sequences(["the cat ate"]) == [[1, 2, tok.word_index["ate"]]]
    limited = Tokenizer(num_words=3)
    limited.fit_on_texts(texts)
    assert limited.texts_to_sequences(["the cat dog sat"]) == [[1, 2]]  # ids >= num_words dropped
    assert Tokenizer(nb_words=3).num_words == 3  # the Keras 1 spelling
    oov = Tokenizer(num_words=3, oov_token="<unk>")
    oov.fit_on_texts(texts)
    assert oov.word_index["<unk>"] == 1 and oov.texts_to_sequences(["the zebra"]) == [[2, 1]]
    assert text_to_word_sequence("Hello, World!<br />Again") == ["hello", "world", "br", "again"]
    m = tok.texts_to_matrix(["the the cat"], mode="count")
    assert m.shape == (1, len(tok.word_index) + 1) and m[0, 1] == 2 and m[0, 2] == 1


def test_pad_sequences_pre_and_post():
    seqs = [[1, 2, 3, 4, 5], [6, 7], []]
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=3), [[3, 4, 5], [0, 6, 7], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=3, padding="post", truncating="post"),
                                  [[1, 2, 3], [6, 7, 0], [0, 0, 0]])
    assert pad_sequences(seqs).shape == (3, 5)


def test_read_imdb_order_and_labels(imdb):
    texts, labels = read_imdb(str(imdb), "train")
    assert len(texts) == 500 and labels[:250].all() and not labels[250:].any()
    first = sorted(os.listdir(imdb / "train" / "pos"), key=lambda n: int(n.split("_")[0]))[0]
    assert texts[0] == (imdb / "train" / "pos" / first).read_text()


def test_a_folder_without_neg_is_one_line(tmp_path):
    (tmp_path / "imdb" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        read_imdb(str(tmp_path / "imdb"), "train")
    root = tmp_path / "imdb" / "train"
    assert str(e.value) == f"{root}: no neg folder (expected train/pos and train/neg)"


def test_latin1_empty_and_binary_reviews_are_named_and_the_rest_is_read(tmp_path, capsys):
    root = tmp_path / "imdb"
    for label in ("pos", "neg"):
        (root / "train" / label).mkdir(parents=True)
        (root / "train" / label / "0_8.txt").write_text("a fine review")
    neg = root / "train" / "neg"
    (neg / "1_2.txt").write_bytes("un caf\xe9 tr\xe8s fade".encode("latin-1"))
    (neg / "2_2.txt").write_text("  \n")
    (neg / "3_1.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    texts, labels = read_imdb(str(root), "train")
    assert texts == ["a fine review", "a fine review", "un café très fade"] and labels.tolist() == [1, 0, 0]
    assert capsys.readouterr().err.splitlines() == [
        f"Warning: {neg}: 1 review(s) not in UTF-8, read as Latin-1: 1_2.txt (byte 6)",
        f"Warning: {neg}: 2 file(s) left out: 2_2.txt (empty), 3_1.txt (binary)"]
    for f in ("0_8.txt", "1_2.txt"):
        os.remove(neg / f)
    with pytest.raises(DataError, match=r"no readable review in this folder \(2_2.txt \(empty\), 3_1.txt"):
        read_imdb(str(root), "train")


@pytest.mark.parametrize("split", ["../x", "..", "/etc", "train/../../x", ""])
def test_split_cannot_leave_the_data_folder(imdb, split):
    with pytest.raises(DL1Error) as e:
        read_imdb(str(imdb), split)
    assert str(e.value) == f"split must be the name of a folder inside the data folder, not {split!r}"


def test_text_functions_check_their_numbers():
    with pytest.raises(DL1Error, match="^maxlen must be at least 0, not -1$"):
        pad_sequences([[1, 2]], maxlen=-1)
    with pytest.raises(DL1Error, match="^num_words must be at least 1, not 0$"):
        Tokenizer(num_words=0)
    from dl1.data.text import limit_vocab

    with pytest.raises(DL1Error, match="^vocab_size must be a whole number, not 'x'$"):
        limit_vocab([[1]], "x")


# ---- GloVe -------------------------------------------------------------------------------------------------
def test_glove_loading_puts_known_vectors_at_the_right_rows(glove, tmp_path):
    vecs, words, wordidx = read_glove(str(glove), dim=50)
    assert words[:4] == ["the", ",", ".", "of"] and vecs.shape == (len(words), 50)
    # the file's own text, line 4 ('of'), is at row 3
    line = glove.read_text().splitlines()[3].split(" ")
    np.testing.assert_allclose(vecs[wordidx["of"]], np.array(line[1:], dtype=np.float32))
    word_index = {"the": 1, "great": 2, "zzz-not-in-glove": 3, "it's": 4, "awful": 5, "rare": 6}
    emb = embedding_matrix(word_index, vecs, wordidx, 7, seed=0, verbose=False)
    assert emb.shape == (7, 50) and not emb[0].any()
    for w in ("the", "great", "awful"):
        np.testing.assert_allclose(emb[word_index[w]], vecs[wordidx[w]] / 3, rtol=1e-6)
    for i in (3, 4, 6):  # unknown, a word the pattern refuses, the rare-word id: random, not copied
        assert emb[i].any() and not any(np.allclose(emb[i], v / 3) for v in vecs[:50])
    # id -> word works as well as word -> id
    emb2 = embedding_matrix({v: k for k, v in word_index.items()}, vecs, wordidx, 7, seed=0, verbose=False)
    np.testing.assert_array_equal(emb, emb2)
    # the course's three pre-processed files round-trip
    loc = str(tmp_path / "6B.50d")
    save_glove(loc, vecs, words, wordidx)
    v2, w2, i2 = load_glove(loc)
    np.testing.assert_array_equal(v2, vecs)
    assert w2 == words and i2 == wordidx


def test_saved_glove_files_are_json_never_a_pickle(tmp_path, capsys):
    import json
    import pickle

    vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
    loc = str(tmp_path / "g")
    save_glove(loc, vecs, ["a", "b", "c"])
    assert json.loads(open(loc + "_idx.pkl").read()) == {"format": "dl1-glove-index", "version": 1, "rows": 3,
                                                         "index": {"a": 0, "b": 1, "c": 2}}
    rebuild = f"write them again with save_glove({loc!r}, *read_glove(GLOVE_TEXT_FILE))"

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    # a replaced index that would run code: not loaded, the index is rebuilt from the words
    open(loc + "_idx.pkl", "wb").write(pickle.dumps(Boom()))
    _, words, idx = load_glove(loc)
    assert idx == {"a": 0, "b": 1, "c": 2} and not (tmp_path / "pwned").exists()
    assert capsys.readouterr().err == (f"Warning: {loc}_idx.pkl: a pickle (the 2017 format), which dl1 does not load "
                                       "because a pickle runs code when loaded; rebuilt from g_words.pkl\n")
    open(loc + "_idx.pkl", "w").write('{"format": "dl1-glove-index", "version": 1, "index": {"a": 7}}')
    assert load_glove(loc)[2] == {"a": 0, "b": 1, "c": 2}
    assert "maps 'a' to 7, not a row of the 3 vectors; rebuilt" in capsys.readouterr().err
    # damaged words: one line and the way out
    open(loc + "_words.pkl", "wb").write(pickle.dumps(["a", "b", "c"]))
    with pytest.raises(DataError) as e:
        load_glove(loc)
    assert str(e.value) == (f"{loc}_words.pkl: a pickle (the 2017 format), which dl1 does not load because a "
                            f"pickle runs code when loaded; {rebuild}")
    open(loc + "_words.pkl", "w").write('{"format": "dl1-glove-words", "version": 1, "words": ["a"]}')
    with pytest.raises(DataError, match="g_words.pkl: 1 words for 3 vectors; write them again"):
        load_glove(loc)
    open(loc + "_words.pkl", "w").write('{"format": "dl1-glove-words", "version": 2, "words": []}')
    with pytest.raises(DataError, match="g_words.pkl: format version 2, this dl1 reads version 1"):
        load_glove(loc)
    open(loc + "_words.pkl", "w").write('["a", "b"')
    with pytest.raises(DataError, match="g_words.pkl: damaged"):
        load_glove(loc)


def test_synthetic_glove_puts_related_words_near(glove):
    vecs, words, wordidx = read_glove(str(glove))
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def cos(a, b):
        return float(unit[wordidx[a]] @ unit[wordidx[b]])

    assert cos("great", "excellent") > 0.8 and cos("king", "queen") > 0.8
    assert cos("great", "awful") < 0 and abs(cos("great", "king")) < 0.5


@pytest.mark.parametrize("content, dim, problem", [
    ("the 0.1 0.2 0.3\nof 0.4 0.5\n", None, "line 2: 2 numbers after the word, expected 3 (ragged rows)"),
    ("the 0.1 0.2 0.3\nof 0.4 0.5 0.6\n", 50, "line 1: 3 numbers after the word, expected 50"),
    ("the 0.1 x 0.3\n", None, "line 1 ('the'): 'x' is not a number"),
    ("the 0.1 0.2\n\nof nan 0.5\nand 0.1 inf\n", None, "line 3 ('of'): NaN or infinity in the vector (2 such "
                                                       "lines: 3, 4)"),
    ("", None, "no word vectors"),
])
def test_bad_glove_file_is_one_line_naming_it(tmp_path, content, dim, problem):
    path = tmp_path / "glove.6B.50d.txt"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        read_glove(str(path), dim=dim)
    assert str(path) in str(e.value) and problem in str(e.value) and "\n" not in str(e.value)


def test_glove_byte_order_mark_and_repeated_words(tmp_path, capsys):
    path = tmp_path / "g.txt"
    path.write_bytes("\ufeffthe 1 2\nof 3 4\nthe 5 6\n".encode("utf-8"))
    vecs, words, wordidx = read_glove(str(path))
    assert words == ["the", "of"] and wordidx == {"the": 0, "of": 1} and vecs.tolist() == [[1, 2], [3, 4]]
    assert capsys.readouterr().err == (f"Warning: {path}: 1 word(s) listed again, the first vector kept: 'the' on "
                                       "line 3 (first on line 1)\n")
    with pytest.raises(DL1Error, match="^dim must be at least 1, not 0$"):
        read_glove(str(path), dim=0)


# ---- the notebooks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_parameters_are_the_course_defaults(name):
    nb = nbformat.read(os.path.join(nbtools.NBS, f"{name}.ipynb"), as_version=4)
    assert not nbtools.output_problems(nb)
    values = nbtools.parameters(name)
    assert set(NOTEBOOKS[name]) == set(values)
    if name == "lesson4":
        assert values["n_factors"] == 50 and values["path"] == "../data/ml-small/" and values["batch_size"] == 64
        assert (values["epochs"], values["dot_epochs"], values["bias_epochs"], values["neural_epochs"]) == \
            (None, (1, 3, 6), (1, 6, 10, 5), 8)
    if name == "lesson5":
        assert values["vocab_size"] == 5000 and values["seq_len"] == 500 and values["glove"].endswith("50d.txt")
        assert (values["epochs"], values["single_epochs"], values["conv1_epochs"], values["glove_epochs"],
                values["multi_epochs"], values["lstm_epochs"]) == (None, 2, 4, (2, 1), (2, 2), 5)
    if name == "wordvectors":
        assert values["n_words"] == 350


@pytest.fixture(scope="module")
def kernel(module_tmp, _isolated_keras_home):
    yield from nbtools.offline_kernel(module_tmp.mktemp("jupyter45"), _isolated_keras_home)


# After the last cell of lesson 4: the library's recommenders (dl1.models.collab, used by the command line and
# the benchmarks) are the notebook's models: same weights, same predictions.
COLLAB_AGREES = """
from dl1.models import collab as _collab
_lib = _collab.bias_model(n_users, n_movies, n_factors)
_lib.set_weights(model.get_weights())
_x = [val.userId.to_numpy()[:500], val.movieId.to_numpy()[:500]]
bias_diff = float(np.abs(_lib.predict(_x, verbose=0) - model.predict(_x, verbose=0)).max())
_lib = _collab.neural_model(n_users, n_movies, n_factors)
_lib.set_weights(nn.get_weights())
neural_diff = float(np.abs(_lib.predict(_x, verbose=0) - nn.predict(_x, verbose=0)).max())
dot_params = _collab.dot_model(n_users, n_movies, n_factors).count_params()
"""


def test_lesson4(kernel, ml, tmp_path):
    run = nbtools.run_notebook("lesson4", tmp_path, {
        "path": str(ml), "n_factors": 50, "batch_size": 256, "dot_epochs": [1, 1, 2], "bias_epochs": [1, 2, 1, 1],
        "neural_epochs": 2}, then=COLLAB_AGREES, read=(
        "n_users", "n_movies", "len(trn) + len(val)", "float(baseline_mse)", "float(dot_val_mse)",
        "float(bias_val_mse)", "float(neural_val_mse)", "float(np.squeeze(model.predict([np.array([3]), np.array([6])])))",
        "movie_emb.shape", "bias_diff", "neural_diff", "dot_params"))
    ratings = read_ratings(str(ml))
    n_users, n_movies = ratings.userId.nunique(), ratings.movieId.nunique()
    assert run["n_users"] == n_users and run["n_movies"] == n_movies
    assert run["len(trn) + len(val)"] == len(ratings)
    # the recommenders beat predicting the global mean
    baseline = run["float(baseline_mse)"]
    assert run["float(bias_val_mse)"] < 0.85 * baseline and run["float(dot_val_mse)"] < baseline
    assert np.isfinite(run["float(neural_val_mse)"])
    assert 0.5 <= run["float(np.squeeze(model.predict([np.array([3]), np.array([6])])))"] <= 6
    assert run["movie_emb.shape"] == (min(2000, n_movies), 50)
    assert (ml / "models" / "bias.h5").exists()
    assert run["bias_diff"] < 1e-5 and run["neural_diff"] < 1e-5
    assert run["dot_params"] == (n_users + n_movies) * 50


def _val_accuracy(run, contains):
    """The last validation accuracy a fit printed in the cell whose source contains ``contains``."""
    return float(re.findall(r"val_accuracy: ([0-9.]+)", run.text(contains))[-1])


def test_lesson5(kernel, imdb, glove, tmp_path):
    # after the last cell: the notebook's create_emb loop builds what embedding_matrix (the library's) builds,
    # from the same random draws
    then = """
np.random.seed(1)
_mine = create_emb()
np.random.seed(1)
emb_diff = float(np.abs(_mine - embedding_matrix(idx, vecs, wordidx, vocab_size, verbose=False)).max())
known = [w for w in idx_arr[:vocab_size - 2] if w in wordidx and re.match(r'^[a-zA-Z0-9\\-]*$', w)]
glove_rows_ok = all(np.allclose(_mine[idx[w]], vecs[wordidx[w]] / 3) for w in known)
"""
    run = nbtools.run_notebook("lesson5", tmp_path, {
        "path": str(imdb), "glove": str(glove), "vocab_size": 1000, "seq_len": 40, "batch_size": 64,
        # a schedule of its own (lists: papermill passes tuples as strings): enough for the convolutions to
        # learn, one epoch of the slow LSTM
        "single_epochs": 2, "conv1_epochs": 2, "glove_epochs": [2, 1], "multi_epochs": [1, 1], "lstm_epochs": 1},
        then=then,
        read=("len(trn_texts)", "trn.shape", "idx_arr[:10]", "emb_diff", "glove_rows_ok", "len(known)"))
    assert run["len(trn_texts)"] == 500 and run["trn.shape"] == (500, 40)
    assert run["idx_arr[:10]"][0] == "the"
    assert run["emb_diff"] == 0 and run["glove_rows_ok"] and run["len(known)"] > 200
    assert "word ids start from their GloVe vector" in run.text("def create_emb")
    moved = float(re.search(r"the embedding moved by ([0-9.e-]+) at most", run.text()).group(1))
    assert moved > 0  # unfreezing took effect
    accuracies = {c: _val_accuracy(run, c) for c in ("model.fit(trn", "conv1.fit(trn")}
    glove_unfrozen = _val_accuracy(run, "model.layers[0].trainable = True")
    assert max([*accuracies.values(), glove_unfrozen]) >= 0.75, accuracies  # 50% is chance
    assert glove_unfrozen >= 0.7
    assert (imdb / "models" / "conv1.h5").exists() and (imdb / "models" / "glove50.h5").exists()


def test_wordvectors(kernel, glove, tmp_path):
    data = tmp_path / "glove"
    data.mkdir()
    (data / glove.name).write_bytes(glove.read_bytes())
    run = nbtools.run_notebook("wordvectors", tmp_path / "out", {"glove": str(data / glove.name), "n_words": 60},
                               read=("vecs.shape", "words[:25]", "w2v('of')[:3]", "neighbours", "Y.shape", "end",
                                     "sorted(f for f in os.listdir(res_path) if f.startswith(name))"))
    vecs, words, wordidx = read_glove(str(glove))
    assert run["vecs.shape"] == vecs.shape and run["words[:25]"] == words[:25]
    np.testing.assert_allclose(run["w2v('of')[:3]"], vecs[wordidx["of"]][:3], rtol=1e-6)
    from dl1.data.datasets._words import NEGATIVE, POSITIVE

    assert sum(w in POSITIVE for w in run["neighbours"]["great"]) >= 6
    assert sum(w in NEGATIVE for w in run["neighbours"]["awful"]) >= 6
    assert run["end"] == 60 and run["Y.shape"][1] == 2
    assert run["sorted(f for f in os.listdir(res_path) if f.startswith(name))"] == \
        ["6B.50d.dat", "6B.50d_idx.pkl", "6B.50d_words.pkl"]
