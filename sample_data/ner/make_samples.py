"""Writes the NER samples in this folder: en/ (CoNLL, word per line) and zh/ (character per line).

The sentences are written for this project from the templates and name lists below (no corpus is
copied). Entity types: PER, LOC, ORG, in the BIO scheme. Dev and test sentences use some names
that the training file never shows, so a model has to generalise from context and word shape.

    python sample_data/ner/make_samples.py   # rewrites en/ and zh/ (deterministic)
"""

import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))

EN_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} flew to {LOC} on Monday to meet {PER} .",
    "{ORG} opened a new office in {LOC} last year .",
    "According to {ORG} , {PER} will visit {LOC} next week .",
    "{PER} studied at {ORG} before moving to {LOC} .",
    "The mayor of {LOC} thanked {PER} for the donation .",
    "{PER} and {PER} founded {ORG} in 1998 .",
    "Shares of {ORG} rose after {PER} spoke in {LOC} .",
    "A spokesman for {ORG} declined to comment .",
    "Heavy rain closed several roads near {LOC} on Sunday .",
    "{PER} said the talks in {LOC} had been useful .",
    "{ORG} signed a contract with {ORG} worth two million dollars .",
    "Born in {LOC} , {PER} joined {ORG} at the age of twenty .",
    "The train from {LOC} to {LOC} was delayed by an hour .",
    "{PER} , a lawyer from {LOC} , represented {ORG} in court .",
    "Fans in {LOC} celebrated the victory late into the night .",
    "The report by {ORG} was published on Thursday .",
    "Prices in the shops went up again this month .",
    "{PER} told reporters that she would leave {ORG} .",
    "Officials from {ORG} and {ORG} met in {LOC} .",
]
EN_PER = ["John Smith", "Maria Garcia", "Peter Blackburn", "Anna Kowalski", "David Chen",
          "Laura Rossi", "Ahmed Hassan", "Emily Watson", "Carlos Mendes", "Yuki Tanaka",
          "Olivia Brown", "Samuel Okafor", "Sophie Martin", "Tom Becker", "Nina Petrova",
          "James", "Clara", "Michael O'Neill", "Hannah Schmidt", "Robert Fischer"]
EN_PER_HELD_OUT = ["Lucy Adams", "Ivan Novak", "Grace Liu", "Paul Dubois", "Ravi Kumar"]
EN_LOC = ["London", "Paris", "New York", "Berlin", "Tokyo", "Madrid", "Chicago", "Cairo",
          "Sydney", "Toronto", "Rome", "Hong Kong", "Buenos Aires", "Vienna", "Lagos", "Oslo",
          "Boston", "Mumbai", "Seoul", "Lisbon"]
EN_LOC_HELD_OUT = ["Dublin", "Prague", "Nairobi", "San Diego", "Helsinki"]
EN_ORG = ["Acme Corporation", "the United Nations", "Google", "Reuters", "Oxford University",
          "the World Bank", "Siemens", "Toyota", "the Red Cross", "Bank of England",
          "Harvard University", "Microsoft", "General Motors", "Nestle", "the European Commission",
          "Deutsche Bank", "Sony", "the BBC", "Airbus", "Unilever"]
EN_ORG_HELD_OUT = ["Boeing", "Stanford University", "the IMF", "Philips", "Samsung"]

ZH_TEMPLATES = [
    "{PER}在{ORG}工作。",
    "{PER}昨天去了{LOC}。",
    "{ORG}在{LOC}设立了新的研究中心。",
    "{PER}和{PER}一起参观了{LOC}的博物馆。",
    "{LOC}的天气很好，{PER}决定出门散步。",
    "据{ORG}消息，{PER}将于下周访问{LOC}。",
    "{PER}毕业于{ORG}，现在住在{LOC}。",
    "来自{LOC}的{PER}加入了{ORG}。",
    "{ORG}的代表{PER}表示，明年会扩大规模。",
    "今年春天，{PER}在{LOC}举办了个人画展。",
    "{LOC}和{LOC}之间的高铁已经开通。",
    "我们明天在{LOC}见面吧。",
    "这家餐厅的菜很好吃。",
    "{ORG}与{ORG}签署了合作协议。",
    "{PER}说{LOC}的冬天比去年冷。",
    "记者从{ORG}获悉，{LOC}将新建三所学校。",
]
ZH_PER = ["王小明", "李娜", "张伟", "刘洋", "陈静", "赵磊", "孙丽", "周杰", "吴敏", "郑浩",
          "黄蕾", "林峰", "何平", "马超", "高翔", "罗琳", "梁宇", "宋佳", "谢明", "韩梅"]
ZH_PER_HELD_OUT = ["杨帆", "朱婷", "胡军", "郭涛", "徐文"]
ZH_LOC = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆",
          "天津", "苏州", "浙江省", "四川省", "长江", "黄河", "香港", "云南", "青岛", "厦门"]
ZH_LOC_HELD_OUT = ["大连", "昆明", "湖南省", "哈尔滨", "珠海"]
ZH_ORG = ["清华大学", "北京大学", "中国银行", "华为公司", "阿里巴巴集团", "人民日报社",
          "复旦大学", "招商银行", "中国科学院", "浙江大学", "腾讯公司", "国家电网", "南京大学",
          "中国移动", "武汉大学", "工商银行", "小米公司", "新华社", "中山大学", "海尔集团"]
ZH_ORG_HELD_OUT = ["同济大学", "建设银行", "联想公司", "四川大学", "百度公司"]


def fill(template, names, rng, tokenize):
    """Fills a template's {TYPE} slots; returns [(token, label), ...] in BIO."""
    pairs = []
    for part in re.split(r"(\{[A-Z]+\})", template):
        if not part:
            continue
        if part.startswith("{"):
            entity_type = part[1:-1]
            tokens = tokenize(rng.choice(names[entity_type]))
            if tokens[0] == "the":  # "the" stays outside the name, as in CoNLL-2003
                pairs.append((tokens.pop(0), "O"))
            pairs += [(t, ("B-" if i == 0 else "I-") + entity_type) for i, t in enumerate(tokens)]
        else:
            pairs += [(t, "O") for t in tokenize(part)]
    return pairs


def make_split(templates, names, held_out, count, rng, tokenize, held_out_share):
    sentences = []
    for _ in range(count):
        pool = {k: (held_out[k] if rng.random() < held_out_share else names[k]) for k in names}
        sentences.append(fill(rng.choice(templates), pool, rng, tokenize))
    return sentences


def write_conll(path, sentences, docstart):
    with open(path, "w", encoding="utf-8") as f:
        for i, sentence in enumerate(sentences):
            if docstart and i % 10 == 0:
                f.write("-DOCSTART- O\n\n")
            f.write("".join(f"{token} {label}\n" for token, label in sentence) + "\n")


def main():
    languages = {
        "en": (EN_TEMPLATES, {"PER": EN_PER, "LOC": EN_LOC, "ORG": EN_ORG},
               {"PER": EN_PER_HELD_OUT, "LOC": EN_LOC_HELD_OUT, "ORG": EN_ORG_HELD_OUT},
               str.split, True),
        "zh": (ZH_TEMPLATES, {"PER": ZH_PER, "LOC": ZH_LOC, "ORG": ZH_ORG},
               {"PER": ZH_PER_HELD_OUT, "LOC": ZH_LOC_HELD_OUT, "ORG": ZH_ORG_HELD_OUT},
               list, False),
    }
    for language, (templates, names, held_out, tokenize, docstart) in languages.items():
        rng = random.Random(f"ner-sample-{language}")
        os.makedirs(os.path.join(HERE, language), exist_ok=True)
        for split, count, share in (("train", 240, 0.0), ("dev", 50, 0.3), ("test", 50, 0.3)):
            sentences = make_split(templates, names, held_out, count, rng, tokenize, share)
            write_conll(os.path.join(HERE, language, f"{split}.txt"), sentences, docstart)


if __name__ == "__main__":
    main()
