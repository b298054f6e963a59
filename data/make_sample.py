"""Regenerate data/sample/ from the official SQuAD v1.1 dev set (CC BY-SA 4.0).

Usage: python data/make_sample.py ../shared/data/squad_v1.1/dev-v1.1.json
Writes corpus.jsonl (one paragraph per line) and eval.jsonl (one question per paragraph, with
its reference answers, the id of the paragraph it came from and that paragraph's text as the
reference context).
"""

import json
import sys
from pathlib import Path

ARTICLES = ("Normans", "Steam_engine", "Oxygen", "Black_Death", "Amazon_rainforest")
QUESTIONS_PER_PARAGRAPH = 1


def main(source: str) -> None:
    squad = json.loads(Path(source).read_text(encoding="utf-8"))
    out = Path(__file__).parent / "sample"
    out.mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w") as corpus, (out / "eval.jsonl").open("w") as evalset:
        for article in squad["data"]:
            if article["title"] not in ARTICLES:
                continue
            title = article["title"].replace("_", " ")
            for number, paragraph in enumerate(article["paragraphs"]):
                doc_id = f"{article['title']}-{number:03d}"
                record = {"id": doc_id, "text": paragraph["context"],
                          "metadata": {"title": title, "paragraph": number}}
                corpus.write(json.dumps(record, ensure_ascii=False) + "\n")
                for qa in paragraph["qas"][:QUESTIONS_PER_PARAGRAPH]:
                    answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                    evalset.write(json.dumps({"id": qa["id"], "question": qa["question"],
                                              "reference_answers": answers,
                                              "relevant_ids": [doc_id],
                                              "reference_contexts": [paragraph["context"]]},
                                             ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/squad_v1.1/dev-v1.1.json")
