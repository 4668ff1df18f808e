"""Builds the small SQuAD-format sample in this folder (text written for this project).

Writes four files in the official layout (`{"version", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}`):

  train-v1.1.json, dev-v1.1.json   answerable questions only
  train-v2.0.json, dev-v2.0.json   the same plus unanswerable questions ("is_impossible": true,
                                   no answers, a "plausible_answers" entry as in SQuAD 2.0)

Answer offsets are computed here from the text (the n-th occurrence of the answer in the context),
so they are right by construction. Dev questions have several gold answers where people would
accept more than one phrasing. The output is deterministic and committed next to this script:

    python sample_data/squad/build_squad_sample.py          # rewrite the four files
    python sample_data/squad/build_squad_sample.py --check  # exit 1 if the files are stale
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (title, context, [(id, question, [answer or (answer, occurrence)], impossible)]). An impossible
# question's single entry is its plausible (wrong) answer.
TRAIN = [
    ("Lighthouses",
     "The lighthouse on Gull Point was built in 1874 from granite quarried on the island itself. "
     "Its lamp burned whale oil until 1901, when kerosene replaced it, and the light was "
     "electrified in 1936. The last resident keeper, Martha Lindqvist, left in 1962; since then "
     "the light has been automatic and the keeper's cottage has housed a small museum.",
     [("lh1", "When was the lighthouse on Gull Point built?", ["1874"], False),
      ("lh2", "What was the lighthouse built from?", ["granite"], False),
      ("lh3", "What fuel replaced whale oil in 1901?", ["kerosene"], False),
      ("lh4", "Who was the last resident keeper?", ["Martha Lindqvist"], False),
      ("lh5", "What does the keeper's cottage house today?", ["a small museum"], False),
      ("lh6", "Who designed the lighthouse on Gull Point?", ["Martha Lindqvist"], True),
      ("lh7", "When was the museum closed?", ["1962"], True)]),
    ("Bread",
     "Sourdough bread rises because of a culture of wild yeast and lactic acid bacteria called a "
     "starter. Bakers feed the starter with flour and water, usually once a day. The bacteria "
     "produce lactic and acetic acids, which give the bread its sour taste and help it keep "
     "longer than bread made with baker's yeast. A typical loaf ferments for twelve to eighteen "
     "hours before it is baked.",
     [("br1", "What is the culture of wild yeast and bacteria called?", ["a starter"], False),
      ("br2", "What do bakers feed the starter with?", ["flour and water"], False),
      ("br3", "Which acids do the bacteria produce?", ["lactic and acetic acids"], False),
      ("br4", "How long does a typical loaf ferment?", ["twelve to eighteen hours"], False),
      ("br5", "At what temperature is sourdough baked?", ["twelve to eighteen hours"], True)]),
    ("Rivers",
     "The Arlen River rises in the Tamsin Hills and flows 212 kilometres north to the sea at "
     "Port Callow. Its largest tributary is the Wren, which joins it at the market town of "
     "Eddisford. In the nineteenth century the lower river was deepened so that barges could "
     "carry coal to the port, and a canal linked Eddisford with the iron works at Marlby.",
     [("rv1", "Where does the Arlen River rise?", ["the Tamsin Hills"], False),
      ("rv2", "How long is the Arlen River?", ["212 kilometres"], False),
      ("rv3", "What is the largest tributary of the Arlen?", ["the Wren"], False),
      ("rv4", "Where does the Wren join the Arlen?", ["Eddisford"], False),
      ("rv5", "What did barges carry to the port?", ["coal"], False),
      ("rv6", "Which town did the canal link with Eddisford?", ["Marlby"], False),
      ("rv7", "How deep is the Arlen at Port Callow?", ["212 kilometres"], True)]),
    ("Bees",
     "A honey bee colony has one queen, a few hundred drones and tens of thousands of workers. "
     "Workers are female and do almost all of the work: they clean the hive, feed the larvae, "
     "build wax comb and collect nectar and pollen. A worker born in summer lives for about six "
     "weeks, while workers born in autumn can survive the winter. Drones have no sting and their "
     "only task is to mate with a queen.",
     [("be1", "How many queens does a colony have?", ["one"], False),
      ("be2", "What do workers build?", ["wax comb"], False),
      ("be3", "How long does a summer worker live?", ["about six weeks"], False),
      ("be4", "What is the only task of drones?", ["to mate with a queen"], False),
      ("be5", "How long does the queen live?", ["about six weeks"], True)]),
    ("Chess clocks",
     "Competitive chess games are played with a clock that has two displays, one for each "
     "player. After moving, a player presses a button that stops their own clock and starts the "
     "opponent's. Mechanical clocks with a small red flag were used for most of the twentieth "
     "century; the flag falls when a player's hour hand reaches twelve. Digital clocks, common "
     "since the 1990s, can add a few seconds to a player's time after every move, a method "
     "called an increment.",
     [("cc1", "How many displays does a chess clock have?", ["two"], False),
      ("cc2", "What does a player press after moving?", ["a button"], False),
      ("cc3", "When does the flag fall?", ["when a player's hour hand reaches twelve"], False),
      ("cc4", "What is adding seconds after every move called?", ["an increment"], False),
      ("cc5", "Who invented the digital chess clock?", ["the 1990s"], True)]),
    ("Volcanoes",
     "Mount Orrin is a stratovolcano that last erupted in 1783. The eruption lasted eight months "
     "and covered the valley of Sellen in ash up to two metres deep. Today the volcano is "
     "watched by an observatory on its eastern flank, which records small earthquakes and "
     "measures the gases that escape from vents near the summit. Scientists consider a new "
     "eruption unlikely in the coming decades.",
     [("vo1", "What kind of volcano is Mount Orrin?", ["a stratovolcano"], False),
      ("vo2", "When did Mount Orrin last erupt?", ["1783"], False),
      ("vo3", "How long did the eruption last?", ["eight months"], False),
      ("vo4", "Which valley was covered in ash?", ["Sellen"], False),
      ("vo5", "Where is the observatory?", ["on its eastern flank"], False),
      ("vo6", "How many people died in the 1783 eruption?", ["eight months"], True)]),
    ("Libraries",
     "The public library of Hallam opened in 1889 with four thousand books donated by the "
     "merchant Josiah Crane. A reading room for newspapers was added in 1902. In 1974 the "
     "library moved to a larger building on Station Road, and its old home became the town "
     "archive. Members can now borrow up to twelve items at a time, including films and music.",
     [("li1", "When did the library of Hallam open?", ["1889"], False),
      ("li2", "Who donated the first books?", ["Josiah Crane"], False),
      ("li3", "What was added in 1902?", ["A reading room for newspapers"], False),
      ("li4", "Where did the library move in 1974?", ["Station Road"], False),
      ("li5", "How many items can members borrow at a time?", ["twelve"], False),
      ("li6", "How much does a library card cost?", ["twelve"], True)]),
]

# A long paragraph: with a short max_seq_length it is cut into several windows.
_LONG_CONTEXT = (
    "The Northern Line railway was proposed in 1851 by a group of wool merchants who wanted a "
    "faster route from the mills of Dunmore to the harbour at Kelsey. Construction began in 1856 "
    "under the engineer Thomas Ashdown, who chose a route along the valley floor to avoid steep "
    "gradients. The hardest part of the work was the Brennan Tunnel, 1.6 kilometres long, which "
    "took four years to dig through limestone and cost the lives of eleven workers. The line "
    "opened to passengers on 3 May 1861, with six trains a day in each direction. Freight soon "
    "mattered more than passengers: by 1880 the railway carried over two hundred thousand tons "
    "of wool, coal and timber every year. Stations were built at Dunmore, Halden, Crosby Mill, "
    "Ferrow and Kelsey, and a short branch served the quarries at Pike Edge. The line was "
    "merged into a national company in 1923 and lost its passenger service in 1965, although "
    "freight trains ran until 1982. Since 2004 a heritage society has operated steam trains on "
    "the seven kilometres between Halden and Crosby Mill, using a locomotive built in Kelsey in "
    "1911.")
TRAIN.append(
    ("Railways", _LONG_CONTEXT,
     [("rl1", "Who proposed the Northern Line railway?", ["a group of wool merchants"], False),
      ("rl2", "Who was the engineer of the line?", ["Thomas Ashdown"], False),
      ("rl3", "How long is the Brennan Tunnel?", ["1.6 kilometres"], False),
      ("rl4", "How many workers died digging the tunnel?", ["eleven"], False),
      ("rl5", "When did the line open to passengers?", ["3 May 1861"], False),
      ("rl6", "When did the line lose its passenger service?", ["1965"], False),
      ("rl7", "Until when did freight trains run?", ["1982"], False),
      ("rl8", "Where was the heritage locomotive built?", [("Kelsey", 3)], False),
      ("rl9", "Who operates the heritage trains today?", ["a heritage society"], False),
      ("rl10", "Who was the first driver of the line?", ["Thomas Ashdown"], True)]))

DEV = [
    ("Lighthouses",
     "Fog signals were installed at many lighthouses because a light cannot be seen in thick "
     "fog. Early signals were bells struck by clockwork; later, compressed air drove large horns "
     "called diaphones, whose low two-tone note could be heard more than ten kilometres away. "
     "Most fog signals were switched off in the 1980s after ships began to rely on radar and "
     "satellite navigation.",
     [("dlh1", "Why were fog signals installed?",
       ["because a light cannot be seen in thick fog", "a light cannot be seen in thick fog"],
       False),
      ("dlh2", "What struck the early bells?", ["clockwork"], False),
      ("dlh3", "What are the large horns called?", ["diaphones"], False),
      ("dlh4", "How far away could a diaphone be heard?",
       ["more than ten kilometres away", "more than ten kilometres"], False),
      ("dlh5", "When were most fog signals switched off?", ["in the 1980s", "the 1980s"], False),
      ("dlh6", "Who invented the diaphone?", ["clockwork"], True)]),
    ("Bees",
     "Bees tell each other where to find food by dancing. A forager returning to the hive "
     "performs a waggle dance on the comb: the angle of the dance shows the direction of the "
     "flowers relative to the sun, and the length of the waggle run shows the distance. The "
     "Austrian scientist Karl von Frisch described the dance in the 1940s and shared a Nobel "
     "Prize for his work in 1973.",
     [("dbe1", "How do bees tell each other where food is?", ["by dancing", "dancing"], False),
      ("dbe2", "What does the angle of the dance show?",
       ["the direction of the flowers relative to the sun",
        "the direction of the flowers"], False),
      ("dbe3", "Who described the waggle dance?", ["Karl von Frisch"], False),
      ("dbe4", "When did von Frisch share a Nobel Prize?", ["1973", "in 1973"], False),
      ("dbe5", "How many bees watch a waggle dance?", ["1973"], True)]),
    ("Rivers",
     "Floods on the lower Arlen were common until 1958, when the Stanmoor dam was completed "
     "twenty kilometres above Eddisford. The reservoir behind the dam holds forty million cubic "
     "metres of water and supplies drinking water to Port Callow. A fish pass beside the dam "
     "lets salmon swim upstream to their spawning grounds in the hills.",
     [("drv1", "When was the Stanmoor dam completed?", ["1958"], False),
      ("drv2", "How much water does the reservoir hold?",
       ["forty million cubic metres", "forty million cubic metres of water"], False),
      ("drv3", "Which town gets drinking water from the reservoir?", ["Port Callow"], False),
      ("drv4", "What lets salmon swim upstream?", ["A fish pass", "A fish pass beside the dam"],
       False),
      ("drv5", "How high is the Stanmoor dam?", ["twenty kilometres"], True)]),
]


def _answer(context, answer):
    """{"text", "answer_start"} of the n-th occurrence (1 when not given) of the answer text."""
    text, occurrence = (answer, 1) if isinstance(answer, str) else answer
    start = -1
    for _ in range(occurrence):
        start = context.find(text, start + 1)
        if start < 0:
            raise ValueError(f"{text!r} occurs fewer than {occurrence} times in {context[:40]!r}")
    return {"text": text, "answer_start": start}


def build(articles, version_2):
    """The SQuAD dict of `articles`; unanswerable questions only in version 2."""
    data = []
    for title, context, questions in articles:
        qas = []
        for qas_id, question, answers, impossible in questions:
            if impossible and not version_2:
                continue
            qa = {"id": qas_id, "question": question}
            if impossible:
                qa["answers"] = []
                qa["plausible_answers"] = [_answer(context, answers[0])]
            else:
                qa["answers"] = [_answer(context, answer) for answer in answers]
            if version_2:
                qa["is_impossible"] = impossible
            qas.append(qa)
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "v2.0" if version_2 else "1.1", "data": data}


def outputs():
    """{file name: file text} of the four sample files."""
    files = {}
    for name, articles in (("train", TRAIN), ("dev", DEV)):
        # Training files keep one answer per question, as the reference requires.
        if name == "train":
            for _, _, questions in articles:
                assert all(len(q[2]) == 1 for q in questions), "one answer per training question"
        for version, version_2 in (("v1.1", False), ("v2.0", True)):
            text = json.dumps(build(articles, version_2), indent=1, ensure_ascii=False) + "\n"
            files[f"{name}-{version}.json"] = text
    return files


def main(argv):
    check = "--check" in argv
    stale = []
    for name, text in outputs().items():
        path = os.path.join(HERE, name)
        if check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if stale:
        print("stale: " + ", ".join(stale) + "; run python sample_data/squad/build_squad_sample.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
