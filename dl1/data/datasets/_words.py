"""Word lists shared by the synthetic IMDB reviews and the synthetic GloVe file, so that they overlap."""

import numpy as np

POSITIVE = ("great excellent wonderful best brilliant loved beautiful perfect superb enjoyed amazing "
            "favorite touching fun masterpiece recommend fantastic moving delightful charming").split()
NEGATIVE = ("bad worst awful boring terrible waste poor stupid horrible dull lame mess disappointing "
            "annoying ridiculous pointless mediocre badly unfunny avoid").split()
# frequent words first, as in GloVe's file (punctuation tokens included there)
GLOVE_HEAD = ['the', ',', '.', 'of', 'to', 'and', 'in', 'a', '"', "'s", 'for', '-', 'that', 'on', 'is', 'was',
              'said', 'with', 'he', 'as', 'it', 'by', 'at', '(', ')']
NEUTRAL = ("the and a of to is br in it i this that was as for with movie but film on not you are his have "
           "he be one all at by an they who so from like her just about out if has what some there can "
           "more when very up no time she even my would which only story really see their had we were me "
           "well than much get been other people will do also into first because how him most made its then "
           "make way could them too any after movies think characters character watch two films seen many "
           "life being plot acting never little where show know ever man does here off still over end scene "
           "scenes director actor actors actress cast music camera ending script series horror comedy drama "
           "action war love family woman world young old real years something back thing going watching "
           "same look though again lot both part things between another every role without funny").split()
TOPICS = {  # groups of related words: near each other in the synthetic GloVe space
    "royalty": "king queen prince princess throne crown royal".split(),
    "numbers": "one two three four five six seven eight nine ten".split(),
    "family": "mother father brother sister son daughter wife husband".split(),
    "places": "city town village country house street river".split(),
}
SYLLABLES = ("ka lo mi ra ven tor sil ban dre fi gu no pel zar qui mon tes lu", "ar en is on ul ek or im")


def tail_words(n, seed=0):
    """``n`` made-up lower-case words (the long tail of a real vocabulary), deterministic."""
    rng = np.random.RandomState(seed)
    first, second = SYLLABLES[0].split(), SYLLABLES[1].split()
    words, seen = [], set()
    while len(words) < n:
        k = rng.randint(2, 4)
        w = "".join(rng.choice(first) for _ in range(k)) + rng.choice(second)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def review_vocabulary():
    words = list(dict.fromkeys(NEUTRAL + [w for g in TOPICS.values() for w in g]))
    return [w for w in words if w not in POSITIVE and w not in NEGATIVE]
