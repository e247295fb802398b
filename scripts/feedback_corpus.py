"""Synthetic, labelled customer-feedback corpus (negative / neutral / positive) for crmscore's sentiment model.

Texts are built compositionally: ~60 template *families* (a family is one way of saying something: a complaint
about an event, a negated compliment, a rhetorical question, a thank-you to an agent, an order, a question about
delivery, a third-person call-centre note, ...) fill their slots from large phrase and word lists across six
domains (billing, delivery, support, product, app, store), four channels (email, chat, review, call note),
intensifiers and downtoners, negation, typos and casing noise, short and long texts.

Labelling rules (the label is fixed by the family, which is built so that the rule holds):
  - negative: the customer reports a problem, is unhappy, threatens to leave, or asks a rhetorical/angry question;
    negated praise ("not happy", "far from helpful") is negative.
  - positive: praise, thanks, recommendation, a problem that was solved; negated problems ("no problems at all",
    "never had an issue", "can't fault them") are positive.
  - neutral: questions, requests, orders, plain facts and lukewarm verdicts ("it does the job"), even when they
    mention a problem word ("how do I report a fault?").
  - mixed texts follow the contrast: in "A but B", "A, however B", "A, though B" and "although A, B" the clause
    after the connective (B) decides ("the app is great but billing is a mess" -> negative); an explicit
    "overall ..." verdict decides a text that has one.

Splitting is by family: ~20% of each label's families (HOLDOUT_FAMILIES) are held out entirely, so test accuracy
measures unseen sentence structures (slot fillers are shared). Output is deterministic in (n, seed) and
deduplicated across splits.

    examples = generate_corpus(30_000, seed=42)   # list[Example(text, label, family, channel, split)]
    python scripts/feedback_corpus.py --out /tmp/corpus.jsonl   # write it and print statistics and samples
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

LABELS = ("negative", "neutral", "positive")
NEG, NEU, POS = LABELS
# Held out entirely (~20% of each label's families). Each has siblings in training that express the same intent
# differently (n_event for leaving and for repeated contacts, n_story for consequences, p_event / p_call for thanks,
# n_comparison for comparisons, u_fact + u_question for a fact followed by a question, u_status for questions naming
# a problem...), so the test asks for new phrasings of known intents. Core constructions the model must learn
# (negation, the "but" rule) stay in training.
HOLDOUT_FAMILIES = frozenset({"n_leave", "n_consequence", "n_repeat", "p_thanks", "p_story", "p_comparison",
                              "u_fact_question", "u_report", "u_confirm"})  # fmt: skip
LABEL_SHARE = {NEG: 0.37, NEU: 0.30, POS: 0.33}

# --- slot fillers -------------------------------------------------------------------------------------------------
# {name} in any phrase is filled from SLOTS[name] (recursively). Capitalised first letters are added afterwards.
SLOTS: dict[str, list[str]] = {
    "agent": ["Sarah", "James", "Priya", "Tom", "Aisha", "Marco", "Chloe", "Daniel", "Fatima", "Liam", "Olivia",
              "Mohammed", "Emma", "Noah", "Sofia", "Lucas", "Hannah", "Ravi", "Grace", "Kwame", "Elena", "Oscar",
              "Mei", "Jack", "Zara", "Ben", "Ines", "Tariq", "Ruth", "Leo", "Amara", "Sean", "Yusuf", "Nina",
              "Pavel", "Laura", "Diego", "Holly", "Arjun", "Megan", "Bogdan", "Siobhan", "Kofi", "Hiroshi", "Aoife",
              "Gareth", "Rosa", "Ewan", "Jasmine", "Callum", "Deepa", "Malik", "Ingrid", "Femi", "Lucy", "Rhys",
              "Carmen", "Stefan", "Nkechi", "Owen", "Bethany", "Kamal", "Agnieszka", "Dominic", "the agent",
              "your colleague", "the lady on the phone",
              "the guy on the chat", "the young man in the shop", "the engineer", "your technician"],
    "name": ["Anna", "Peter", "John", "Mary", "Ahmed", "Joanna", "Steve", "Karen", "Luis", "Wei", "Ola", "Chris",
             "Pat", "Sam", "Rob", "Julia", "Ibrahim", "Freya", "Harry", "Nadia", "Tomasz", "Bea", "Ken", "Lena",
             "Gwen", "Alan", "Mariam", "Connor", "Yasmin", "Derek", "Shauna", "Vikram", "Maggie", "Tunde", "Iris",
             "Graham", "Leila", "Marek", "Sunita", "Phil", "Roisin", "Andrei", "Elaine", "Hamza"],
    "surname": ["Patel", "Smith", "Jones", "Khan", "Nowak", "O'Brien", "Williams", "Taylor", "Brown", "Davies",
                "Evans", "Wilson", "Thomas", "Roberts", "Ahmed", "Ali", "Murphy", "Kelly", "Chen", "Singh", "Wright",
                "Walker", "Green", "Hall", "Wood", "Clarke", "Okafor", "Kowalski", "Hughes", "Campbell", "Stewart",
                "Morrison", "Lewandowski", "Rossi", "Fernandes", "Begum", "Mensah", "MacDonald", "Price", "Doyle"],
    "city": ["Leeds", "Manchester", "Bristol", "Glasgow", "Cardiff", "Birmingham", "Liverpool", "Leicester",
             "Nottingham", "Brighton", "Norwich", "York", "Oxford", "Cambridge", "Sheffield", "Newcastle",
             "Belfast", "Edinburgh", "Aberdeen", "Plymouth", "Exeter", "Bath", "Derby", "Reading", "Swindon",
             "Milton Keynes", "Coventry", "Southampton", "Portsmouth", "Hull", "Dundee", "Inverness", "Swansea",
             "Wrexham", "Lincoln", "Ipswich", "Colchester", "Bournemouth", "Blackpool", "Preston", "Wigan",
             "Sunderland", "Stockport", "Luton", "Peterborough", "Gloucester", "Worcester", "Carlisle", "Durham",
             "Canterbury", "Chelmsford", "Crawley", "Harrogate", "Stirling", "Londonderry", "Truro"],
    "country": ["Spain", "France", "Italy", "Portugal", "Greece", "Turkey", "the US", "Canada", "Germany",
                "Poland", "Ireland", "Morocco", "Thailand", "Japan", "Australia", "Croatia", "Egypt", "India",
                "Mexico", "Brazil", "Kenya", "Nigeria", "Vietnam", "Dubai", "Iceland", "Norway", "Cyprus", "Malta",
                "South Africa", "New Zealand"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December", "last month", "this month"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "the 3rd", "the 14th",
            "the 21st", "the 28th", "Friday morning", "Tuesday afternoon", "Saturday morning", "Monday evening",
            "the 9th", "Thursday lunchtime"],
    "ordinal": ["1st", "5th", "10th", "15th", "20th", "25th", "28th", "last day of the month"],
    "amount": ["£12.50", "£30", "£45.99", "£8", "£120", "£64.20", "£19.99", "£200", "€25", "€49", "$35", "$89.90",
               "£5.50", "£72", "£150", "£9.99", "£27.40", "£310"],
    "n": ["2", "3", "4", "5", "6", "7", "8", "10", "12", "14", "two", "three", "four", "five", "six", "ten"],
    "minutes": ["20", "35", "40", "45", "50", "55", "70", "90", "forty", "fifty", "ninety", "a hundred"],
    "years": ["two", "three", "five", "seven", "ten", "twelve", "fifteen", "20", "8", "4"],
    "order_no": ["48213", "77120", "10394", "55871", "90233", "31847", "66502", "20419", "83756", "41268", "73095",
                 "12837", "59604", "38211", "94472"],
    "ticket": ["TK-2291", "TK-4410", "CS-88213", "REF 5531", "INC-30417", "CS-10972", "TK-7705", "REF 9124"],
    "feature": ["payments", "usage", "bill history", "roaming", "plan settings", "notifications", "order tracking",
                "direct debit", "account", "support chat", "data boost", "parental controls"],
    "os": ["Android", "iOS", "an iPad", "an old Android phone", "a Chromebook", "Windows", "a Mac"],
    "language": ["Polish", "Welsh", "Spanish", "Urdu", "Portuguese", "Arabic", "French", "Punjabi"],
    "device": ["phone", "tablet", "laptop", "router", "smartwatch", "TV box", "smart speaker", "doorbell camera",
               "mesh wifi kit", "modem", "hub", "landline handset", "games console", "camera", "e-reader"],
    "document": ["my proof of address", "the signed contract", "a photo of the damaged box", "my bank details",
                 "the returns form", "my ID", "the receipt", "a screenshot of the error"],
    "person": ["my partner", "my daughter", "my son", "my mum", "my dad", "my flatmate", "my colleague",
               "my wife", "my husband", "my neighbour"],
}  # fmt: skip

# Product mentions: generic devices and plans plus the names of the crm_data catalogue (loaded lazily).
_PRODUCTS = ["the {device}", "my new {device}", "the replacement {device}", "the 5G plan", "the fibre package",
             "the unlimited data plan", "the family plan", "the SIM-only deal", "the sports pack", "the TV bundle",
             "the broadband upgrade", "the mesh wifi kit", "the phone insurance", "the roaming pass"]  # fmt: skip

INTENSIFIER = ["really", "very", "extremely", "incredibly", "absolutely", "so", "super", "truly", "genuinely",
               "seriously", "totally", "thoroughly", "properly", "utterly", "beyond", "massively", "deeply",
               "quite", "pretty", "remarkably", "exceptionally", "unbelievably"]  # fmt: skip
POS_ADJ = ["great", "excellent", "brilliant", "fantastic", "superb", "outstanding", "amazing", "wonderful",
           "quick", "fast", "smooth", "reliable", "spot on", "top notch", "first class", "flawless", "seamless",
           "impressive", "lovely", "perfect", "solid", "painless", "efficient", "faultless", "stellar",
           "exceptional", "terrific", "fab", "ace", "second to none", "a breeze", "hassle-free", "marvellous",
           "splendid", "dependable", "speedy", "slick", "effortless", "phenomenal", "sublime", "fabulous",
           "refreshing", "straightforward", "generous", "good value", "blazing fast"]  # fmt: skip
NEG_ADJ = ["terrible", "awful", "useless", "rubbish", "shocking", "appalling", "dreadful", "horrendous",
           "pathetic", "unacceptable", "disgraceful", "slow", "confusing", "broken", "unreliable", "frustrating",
           "poor", "patchy", "sloppy", "laughable", "a joke", "a nightmare", "ridiculous", "painful", "abysmal",
           "atrocious", "a shambles", "a mess", "diabolical", "woeful", "hopeless", "dire", "infuriating",
           "sluggish", "glitchy", "overpriced", "substandard", "chaotic", "shoddy", "maddening", "inexcusable",
           "a disaster", "a farce", "hit and miss", "dodgy", "pitiful", "torturous", "miserable"]  # fmt: skip
POS_PEOPLE = ["helpful", "friendly", "patient", "knowledgeable", "polite", "professional", "kind", "courteous",
              "understanding", "attentive", "cheerful", "thorough", "on the ball", "really nice", "reassuring",
              "considerate", "approachable", "warm", "genuine", "competent", "welcoming"]  # fmt: skip
NEG_PEOPLE = ["rude", "unhelpful", "clueless", "dismissive", "arrogant", "incompetent", "condescending",
              "impatient", "useless", "careless", "abrupt", "uninterested", "sarcastic", "evasive", "patronising",
              "hostile", "lazy", "unprofessional", "ignorant"]  # fmt: skip
POS_FEEL = ["happy", "pleased", "delighted", "impressed", "satisfied", "thrilled", "grateful", "relieved",
            "over the moon", "chuffed", "made up", "glad", "content", "ecstatic", "amazed", "reassured",
            "thankful", "blown away", "well looked after"]  # fmt: skip
NEG_FEEL = ["unhappy", "disappointed", "frustrated", "annoyed", "furious", "fed up", "upset", "angry", "livid",
            "disgusted", "let down", "exasperated", "sick and tired", "appalled", "stressed", "gutted", "outraged",
            "fuming", "baffled", "worn out", "at my wits' end", "distressed", "insulted", "ripped off"]  # fmt: skip
DOWNTONER = ["a bit", "slightly", "somewhat", "a little", "rather", "fairly"]
# Used by families of both polarities, so that no connective becomes a label cue.
CONNECTIVE = ["On top of that", "Also", "What's more", "Plus", "Besides that", "And"]


@dataclass(frozen=True)
class Domain:
    things: list[str]  # noun phrases for non-human subjects ("the invoice")
    people: list[str]  # human subjects ("the courier")
    bad: list[str]  # first-person or descriptive problem clauses, no final punctuation
    good: list[str]  # praise-worthy clauses
    issue: list[str]  # noun phrases naming a problem ("a double charge on my March bill")
    request: list[str]  # imperative/neutral requests (may be prefixed with "please", "can you", ...)
    question: list[str]  # neutral questions, no question mark
    fact: list[str]  # neutral statements
    task: list[str]  # things someone helped with ("sorting out my refund")


DOMAINS: dict[str, Domain] = {
    "billing": Domain(
        things=["my bill", "the invoice", "my latest invoice", "the {month} bill", "the direct debit", "the refund",
                "the payment page", "my account balance", "the monthly charge", "my statement", "the billing",
                "the pricing", "your billing system", "the price rise", "my tariff"],
        people=["the billing team", "the accounts department", "the collections team"],
        bad=["I was charged twice in {month}", "you took {amount} after I cancelled",
             "my bill went up by {amount} without any warning", "the refund I was promised still hasn't arrived",
             "I keep getting charged for {product} which I never ordered",
             "there's a late fee on my account even though I paid on time",
             "the direct debit came out a week early and my account went overdrawn",
             "my invoice shows roaming charges for a trip I never took",
             "I've been overcharged {n} months in a row", "the discount I was promised isn't on my bill",
             "nobody can explain the {amount} on my statement", "I was billed for a full month after I left",
             "the payment page keeps rejecting my card", "my bill is wrong again",
             "you sent my account to a debt collector over {amount} I don't owe",
             "the price went up in the middle of my contract", "I've been waiting {n} weeks for a refund of {amount}",
             "my final bill is {amount} more than it should be", "the credit you applied has vanished",
             "I got charged an exit fee I was told I wouldn't pay", "my bill arrived in someone else's name",
             "you charged my old card after I updated my details", "the promotional price ended without notice",
             "I'm paying for a landline I cancelled in {month}", "the paper bill fee keeps coming back",
             "the compensation you promised was never applied"],
        good=["the refund of {amount} arrived within two days", "my bill is finally correct",
              "the new tariff saves me {amount} a month", "the double charge was fixed with one phone call",
              "the invoice is clear and easy to understand", "{agent} credited my account straight away",
              "switching to paperless billing was painless", "the loyalty discount was applied automatically",
              "my refund came through earlier than promised", "the bill breakdown finally makes sense",
              "you waived the late fee without any fuss", "the price for my plan is very fair",
              "setting up the direct debit took a minute", "the billing team spotted an error and refunded me",
              "you reminded me before my discount ended", "the bill arrived on time and matched the quote exactly",
              "{agent} explained every line of my invoice", "the goodwill credit of {amount} was a lovely surprise"],
        issue=["a double charge on my {month} bill", "the {amount} charge I don't recognise", "my missing refund",
               "the late fee", "the wrong amount on my invoice", "the price rise", "a billing error"],
        request=["send me a copy of my {month} invoice", "change my payment date to the {ordinal}",
                 "switch me to paperless billing", "update the card on my account", "set up a direct debit for me",
                 "add {person} as a second account holder", "send me a VAT invoice for my business account",
                 "move my bill date to the {ordinal}", "email me a breakdown of my last three bills",
                 "cancel the direct debit from next month", "put my account on annual billing",
                 "change the billing address to my new flat in {city}"],
        question=["why is my {month} bill higher than usual", "when will the refund reach my account",
                  "how do I download my invoices", "is there a fee for paying by card",
                  "what is the {amount} charge on my statement", "can I pay my bill in instalments",
                  "do you offer a discount for paying annually", "which day does the direct debit come out",
                  "how much will I pay if I leave my contract early", "is VAT included in the monthly price",
                  "can I get a refund for the days without service", "how do I report a billing error"],
        fact=["I paid the {month} bill yesterday", "my direct debit goes out on the {ordinal}",
              "I changed banks last week", "my contract renews in {month}",
              "I moved to a new address in {city} in {month}", "my employer pays half of my phone bill",
              "I'm on the {amount} a month tariff", "I have two lines on one account"],
        task=["sorting out my refund", "fixing my bill", "explaining the charges on my invoice",
              "removing the late fee", "setting up my direct debit", "getting my overcharge back"],
    ),
    "delivery": Domain(
        things=["my order", "the parcel", "the delivery", "the tracking page", "order {order_no}",
                "the delivery service", "the packaging", "the delivery slot", "the returns process", "the shipping"],
        people=["the courier", "the delivery driver", "the driver", "your courier company"],
        bad=["my order is {n} days late", "the courier left the parcel out in the rain",
             "the tracking hasn't updated since {day}", "the box arrived crushed and the {device} is scratched",
             "I waited in all day and nobody came", "the parcel went to the wrong address",
             "half of my order is missing", "the driver marked it as delivered but it never arrived",
             "I've rescheduled the delivery {n} times already", "the {device} arrived with a cracked screen",
             "you sent me the wrong colour", "my order {order_no} was cancelled without any explanation",
             "the parcel was thrown over my fence", "the replacement {device} never turned up",
             "the returns label you emailed doesn't work", "I was charged for next-day delivery and it took a week",
             "the courier was rude and refused to bring it upstairs",
             "my {device} was delivered to a neighbour I don't know",
             "the delivery window was eight hours long and they still missed it",
             "the parcel was opened before it reached me", "I paid for express shipping and got nothing",
             "the box was soaked through", "the courier's photo shows someone else's door"],
        good=["my {device} arrived a day early", "the courier was polite and careful",
              "delivery was quick and the packaging was perfect", "the tracking was accurate to the minute",
              "the replacement arrived the next morning", "the driver called ahead and waited while I came down",
              "the parcel came exactly in the slot I picked", "the return was collected from my door the next day",
              "everything arrived well packed and on time", "my order turned up the same day",
              "the delivery was faster than promised", "the driver carried the box all the way up to my flat",
              "I got a text with a one-hour window and they were right on time", "the {device} was beautifully packed"],
        issue=["a late delivery", "a missing parcel", "a damaged box", "the wrong item", "a failed delivery",
               "order {order_no}", "a lost parcel"],
        request=["deliver my order to {city} instead", "leave the parcel with my neighbour at number {n}",
                 "change the delivery date to {day}", "send the {device} to my office address",
                 "send me {n} extra SIM cards", "cancel order {order_no}", "hold my parcel at the depot",
                 "send me a returns label for the {device}", "book a collection for the faulty {device}",
                 "add a delivery note saying the doorbell doesn't work", "deliver after 6pm if possible"],
        question=["when will order {order_no} arrive", "can I change my delivery address",
                  "do you deliver on Sundays", "how do I track my parcel",
                  "can I collect the {device} from the store in {city}", "is delivery free for orders over {amount}",
                  "what happens if I'm not in when the courier comes", "who do I contact if my parcel is damaged",
                  "how long do returns take to process", "can someone else sign for my parcel",
                  "do you ship to {country}", "which courier do you use"],
        fact=["I ordered {product} on {day}", "the parcel is being delivered to {city}",
              "I'll be away from {day} until next week", "my order number is {order_no}",
              "I'm sending the {device} back because it's the wrong size", "I live on the top floor with no lift",
              "my building has a parcel locker"],
        task=["tracking down my parcel", "rearranging my delivery", "getting a replacement sent out",
              "sorting out my return", "finding my missing order"],
    ),
    "support": Domain(
        things=["your customer service", "the helpline", "the live chat", "the support", "the callback service",
                "the phone line", "the complaints process", "the chat bot", "the online help", "the service desk"],
        people=["the agent", "the technician", "the engineer", "{agent}", "your staff", "the support team",
                "the person on the phone", "the advisor", "the team on the chat"],
        bad=["I was on hold for {minutes} minutes and then cut off", "nobody ever calls back",
             "the agent hung up on me", "I've explained the same problem to five different people",
             "the engineer didn't turn up for the appointment", "the chat bot keeps sending me round in circles",
             "support closed my ticket without fixing anything", "I was promised a callback on {day} and never got one",
             "every agent tells me something different", "I've been passed between departments for {n} days",
             "the technician left without finishing the job", "my complaint has been ignored for {n} weeks",
             "the advisor just read from a script", "I was told to turn it off and on again for the fifth time",
             "the engineer cancelled my appointment twenty minutes before it started",
             "ticket {ticket} has been open for a month", "the hold music played for an hour",
             "I was put through to the wrong department {n} times", "the agent promised a refund and then denied it",
             "the engineer blamed my wiring and left", "support keeps asking for the same screenshots"],
        good=["{agent} sorted everything out in one call", "the engineer fixed the connection in twenty minutes",
              "the support team called me back as promised", "the live chat answered straight away",
              "{agent} went above and beyond to help", "the technician explained everything clearly",
              "my issue was resolved before I even finished my coffee", "the callback came within the hour",
              "the engineer arrived early and tidied up afterwards", "{agent} stayed on the line until it worked",
              "they fixed a problem I'd had for months", "the advisor knew exactly what to do",
              "{agent} remembered my case and picked it up straight away",
              "the engineer even fixed my neighbour's line",
              "the chat advisor sent a clear step by step guide", "my complaint was taken seriously and resolved"],
        issue=["ticket {ticket}", "my unresolved complaint", "the missed engineer visit", "a dropped call",
               "the broken promise of a callback", "my open case"],
        request=["book an engineer visit for {day}", "call me back after 5pm", "escalate ticket {ticket}",
                 "send a technician to check the line", "reopen case {ticket}", "add a note to my account",
                 "pass this on to a manager", "arrange a callback on {day}", "email me a summary of today's call",
                 "send me the complaints procedure"],
        question=["what are your helpline opening hours", "is there a number I can call from abroad",
                  "how do I reopen a closed ticket", "can I speak to someone in {language}",
                  "how long does an engineer visit take", "do I need to be home for the technician",
                  "what's the reference number for my case", "is the live chat open at weekends",
                  "how do I make a formal complaint", "what happens if I miss the engineer appointment"],
        fact=["I have an engineer visit booked for {day}", "my ticket number is {ticket}",
              "I spoke to {agent} on {day}", "I called the helpline this morning",
              "I'm hard of hearing so email works best for me", "I'm only free after 4pm on weekdays"],
        task=["fixing my connection", "sorting out my complaint", "setting up my new {device}",
              "getting my account unlocked", "explaining the options so clearly", "booking the engineer"],
    ),
    "product": Domain(
        things=["my broadband", "the signal", "the wifi", "the 5G coverage", "the TV box", "the new router",
                "my phone", "the connection", "the battery", "the network", "the picture quality", "{product}",
                "the {device}", "the fibre", "the mobile data", "the call quality", "the coverage in {city}"],
        people=["your network team", "the installer"],
        bad=["the broadband drops every evening", "I get no signal at all in {city}",
             "{product} stopped working after two weeks", "the router restarts itself every hour",
             "my download speed is a fraction of what I pay for", "the TV box freezes during every match",
             "the battery barely lasts half a day", "calls keep dropping mid-sentence",
             "the {device} overheats when it charges", "the wifi doesn't reach the kitchen",
             "I've had no internet since {day}", "the 5G keeps falling back to 3G", "the picture keeps pixelating",
             "the {device} won't turn on", "my data runs out after a week even on the big plan",
             "the speed drops to nothing at peak times", "the line is so crackly I can't hear anyone",
             "the {device} you sold me is faulty out of the box", "the wifi vanishes whenever it rains",
             "texts arrive hours late", "the {device} has a dead pixel in the middle of the screen",
             "voicemail stopped working after the update", "my landline has a constant buzz"],
        good=["the fibre is lightning fast", "the signal is strong everywhere I go", "{product} works perfectly",
              "the picture quality is stunning", "the new router covers the whole house",
              "the battery lasts all weekend", "I can stream in 4K with no buffering",
              "the connection hasn't dropped once", "calls are crystal clear", "the {device} is a joy to use",
              "the speeds are even better than advertised", "the 5G is incredibly quick in {city}",
              "the coverage on my commute is excellent", "the upgrade made a huge difference",
              "video calls are smooth even with the whole family online", "the {device} feels really premium",
              "my gaming lag has completely disappeared", "even the garden office gets full signal now"],
        issue=["the slow broadband", "the dropped calls", "no signal", "the faulty {device}", "the outage in {city}",
               "the wifi problems", "the freezing TV box"],
        request=["upgrade me to {product}", "add {product} to my plan", "downgrade my broadband to the basic package",
                 "unlock my phone", "port my number from my old network", "swap my SIM for an eSIM",
                 "turn off international calls on my line", "add a data boost to my account",
                 "switch my plan to SIM-only when the contract ends", "send me {product}"],
        question=["is 5G available in {city}", "does {product} work with my old router",
                  "what speed can I get at my address", "does the plan include roaming in {country}",
                  "how much data is left on my plan", "can I use my own router", "is there a fibre upgrade in my area",
                  "does the TV bundle include the sports channels", "can I keep my number if I switch plans",
                  "what's the difference between the two fibre packages", "how do I report a fault with my line",
                  "is there an outage in {city} right now"],
        fact=["I work from home three days a week", "there are five of us streaming in the evenings",
              "my contract ends in {month}", "I mostly use my phone for calls and the odd email",
              "I've just moved into a new build in {city}", "I use about 20GB a month",
              "I'm travelling to {country} in {month}"],
        task=["getting my broadband back up", "setting up the new router", "boosting the signal at home",
              "transferring my data to the new {device}", "porting my number"],
    ),
    "app": Domain(
        things=["the app", "the new app", "the website", "the online account", "the login page", "the app update",
                "the {feature} page in the app", "your app", "the account portal", "the app's {feature} screen"],
        people=["your app developers", "the web team"],
        bad=["the app crashes every time I open it", "I can't log in since the last update",
             "the app logged me out and won't accept my password", "the website times out when I try to pay",
             "the {feature} screen is completely blank", "the update wiped all my settings",
             "the verification codes never arrive", "the app shows the wrong balance",
             "the website won't let me change my address", "the app freezes on the {feature} screen",
             "the app drains my battery", "I get an error every time I try to upgrade online",
             "the chat in the app disconnects after a minute", "the new design hides everything I need",
             "the app charged me twice when I pressed pay", "the password reset link expires before it arrives",
             "the website says my account doesn't exist"],
        good=["the new app is so easy to use", "paying through the app takes seconds",
              "the {feature} feature is really handy", "the website redesign looks clean and loads fast",
              "I can manage everything from the app now", "the app tells me exactly how much data I have left",
              "upgrading online took two minutes", "the app notifications are actually useful",
              "logging in with my fingerprint is so convenient", "the {feature} section is clear and simple",
              "the app warned me before I ran out of data", "the website finally works properly on my phone",
              "the in-app chat got me an answer in minutes"],
        issue=["the login problem", "the app crash", "a website error", "the blank {feature} screen",
               "the missing verification code"],
        request=["reset my online account password", "remove my old email address from the app",
                 "turn on two-factor authentication for me", "unlock my online account",
                 "delete my online account", "send me a new activation link", "change the username on my account"],
        question=["how do I update my details in the app", "is there a dark mode", "where can I see my data usage",
                  "does the app work on {os}", "can I pay my bill in the app", "how do I turn off app notifications",
                  "can two people log in to the same account", "where do I find my PUK code in the app",
                  "is there a way to download my bills from the website", "why does the app need my location"],
        fact=["I use the app on {os}", "I updated the app this morning", "I set up my online account on {day}",
              "I mostly manage my account on the website", "my partner manages the account in the app"],
        task=["getting me back into my account", "resetting my password", "fixing the app login",
              "showing me where everything is in the app"],
    ),
    "store": Domain(
        things=["the store in {city}", "the shop", "your {city} branch", "the queue", "the store experience",
                "the in-store service", "the shop in {city}", "the appointment system"],
        people=["the staff in the {city} store", "the shop assistant", "the manager", "the store staff",
                "the sales assistant", "the staff"],
        bad=["the staff in the {city} store ignored me for twenty minutes", "the shop assistant was rude to me",
             "the store had none of the phones advertised online", "they refused my return even with a receipt",
             "I queued for an hour just to be told to call the helpline",
             "the salesman pushed me into a contract I didn't need", "the store closed early without notice",
             "they set up my phone wrong and I lost all my photos", "the price in store was higher than online",
             "my appointment in {city} was double booked", "nobody in the shop knew how to transfer my data",
             "the shop sold me a case that doesn't fit", "they wouldn't let me in without an appointment",
             "the staff were chatting among themselves and ignored the queue"],
        good=["the staff at the {city} store were friendly and patient",
              "{agent} in the shop set up my new phone for me",
              "the return in store took two minutes", "nobody pushed me to buy anything",
              "the store transferred all my photos to the new phone", "{agent} found me a cheaper plan",
              "I was seen straight away even without an appointment", "the shop fixed my screen while I waited",
              "the manager honoured the online price without any argument", "{agent} recycled my old phone for me",
              "the staff took time to show my dad how everything works"],
        issue=["the return that was refused", "the long queue in {city}", "the wrong set-up in store",
               "the missed appointment"],
        request=["book me an appointment at the {city} store", "reserve {product} for collection in {city}",
                 "transfer my in-store order to home delivery", "check if the {city} shop has the {device} in stock"],
        question=["what time does the {city} store open on {day}", "can I return an online order in store",
                  "is there parking near the {city} shop", "do I need an appointment to upgrade in store",
                  "can the store repair a cracked screen", "does the {city} branch sell refurbished phones",
                  "can I pay my bill in store"],
        fact=["I'm visiting the {city} store on {day}", "I bought my phone in the {city} branch",
              "the nearest shop to me is in {city}", "I have a store appointment at 11 on {day}"],
        task=["setting up my new phone", "transferring my contacts", "finding the right plan for me",
              "sorting out my return"],
    ),
}  # fmt: skip


def _products() -> list[str]:
    """Generic product phrases plus the catalogue names crm_data generates (so texts mention real item names)."""
    try:
        import crm_data

        names = [f"the {name}" for name in crm_data.catalogue().table["name"].to_pylist()]
    except ImportError:  # run from elsewhere: the generic phrases are enough
        names = []
    return _PRODUCTS + names


class Filler:
    """Fills {slot} placeholders from SLOTS, recursively, with a seeded generator."""

    _SLOT = re.compile(r"\{(\w+)\}")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.slots = SLOTS | {"product": _products()}

    def pick(self, options: list[str] | tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def fill(self, text: str) -> str:
        for _ in range(5):  # slots may contain slots
            if "{" not in text:
                break
            text = self._SLOT.sub(lambda m: self.pick(self.slots[m.group(1)]), text)
        return text

    def __call__(self, options: list[str] | tuple[str, ...] | str) -> str:
        return self.fill(options if isinstance(options, str) else self.pick(options))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _adv(f: Filler, p: float = 0.5) -> str:
    """An optional intensifier followed by a space."""
    return f(INTENSIFIER) + " " if f.chance(p) else ""


def _graded(f: Filler, adj: str, p: float = 0.5) -> str:
    """`adj`, maybe intensified ("really slow"); phrases ("a joke", "spot on") are left alone."""
    return adj if " " in adj or "-" in adj else _adv(f, p) + adj


def _what_a(f: Filler, adjs: list[str], subject: str) -> str:
    adj = f([a for a in adjs if " " not in a])
    return f"what {'an' if adj[0] in 'aeiou' else 'a'} {adj} experience with {subject}"


def _domain(f: Filler) -> Domain:
    return DOMAINS[f.pick(list(DOMAINS))]


def _subject(f: Filler, d: Domain) -> tuple[str, bool]:
    """(noun phrase, is_person)."""
    if d.people and f.chance(0.3):
        return f(d.people), True
    return f(d.things), False


def _plural(subject: str) -> bool:
    return bool(re.search(r"\b(staff|speeds|calls|developers)\b", subject))


def _is_are(subject: str) -> str:
    return "are" if _plural(subject) else "is"


def _has(subject: str) -> str:
    return "have" if _plural(subject) else "has"


# --- clauses shared by families -------------------------------------------------------------------------------------

def bad_clause(f: Filler) -> str:
    d = _domain(f)
    r = f.rng.random()
    if r < 0.55:
        return f(d.bad)
    subject, person = _subject(f, d)
    if r < 0.85:
        adj = f(NEG_PEOPLE if person and f.chance(0.6) else NEG_ADJ)
        return f"{subject} {_is_are(subject)} {_graded(f, adj)}"
    worse = f(["gone downhill", "let me down again", "been a disaster", "been a total letdown", "become unbearable",
               "got worse every month"])
    return f"{subject} {_has(subject)} {worse}"


def good_clause(f: Filler) -> str:
    d = _domain(f)
    r = f.rng.random()
    if r < 0.55:
        return f(d.good)
    subject, person = _subject(f, d)
    if r < 0.85:
        adj = f(POS_PEOPLE if person and f.chance(0.6) else POS_ADJ)
        return f"{subject} {_is_are(subject)} {_graded(f, adj)}"
    better = f(["been a pleasure", "got better and better", "been spot on", "been worth every penny",
                "exceeded my expectations", "made my life so much easier"])
    return f"{subject} {_has(subject)} {better}"


# --- template families --------------------------------------------------------------------------------------------
# Each family: (label, channels it appears in, weight, builder(f) -> text). Builders return text without channel
# dressing; `dress` adds greetings, sign-offs, chat style or review stars afterwards.

EMAIL, CHAT, REVIEW, CALL = "email", "chat", "review", "call note"
WRITTEN = (EMAIL, CHAT, REVIEW)


def n_event(f: Filler) -> str:
    d = _domain(f)
    follow = ["", " This is the third time.", " Second time this month.", " Sort it out.", " I want a refund.",
              " Not good enough.", " I expect this fixed by {day}.", " Absolutely ridiculous.",
              " I'm not paying for this.", " Nobody seems to care.", " I want compensation.", " Please fix it.",
              " What a mess.", " Fifth time I've asked."]
    return _cap(f(d.bad)) + "." + f(follow)


def n_feeling(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    feel = f(NEG_FEEL)
    return _cap(f([
        f"I'm {_adv(f)}{feel} with {subject}.", f"{subject} {_has(subject)} left me {_adv(f)}{feel}.",
        f"honestly {_adv(f)}{feel} about {f(d.issue)}.", f"I am {_adv(f)}{feel}, {f(d.bad)}.",
        f"{feel}. {_cap(f(d.bad))}.", f"I feel {_adv(f)}{feel} after dealing with {subject}.",
        f"can't tell you how {feel} I am about {f(d.issue)}.",
    ]))


def n_judgement(f: Filler) -> str:
    d = _domain(f)
    subject, person = _subject(f, d)
    adj = f(NEG_PEOPLE if person else NEG_ADJ)
    be = _is_are(subject)
    return _cap(f([
        f"{subject} {be} {_graded(f, adj)}.", f"{subject} {be} {adj}, {_graded(f, adj, 1.0)}.",
        f"{_what_a(f, NEG_PEOPLE if person else NEG_ADJ, subject)}.",
        f"{subject}? {_cap(adj)}.", f"{subject} {be} {_graded(f, adj)} and {f(NEG_ADJ)}.",
        f"I've never seen anything as {adj} as {subject}.",
    ]))


def n_negated_praise(f: Filler) -> str:
    d = _domain(f)
    subject, person = _subject(f, d)
    adj = f(POS_PEOPLE if person else POS_ADJ)
    be = _is_are(subject)
    return _cap(f([
        f"{subject} {be} not {adj}.", f"{subject} {be}n't {adj} in the slightest.", f"{subject} {be} not {adj} at all.",
        f"{subject} {be} far from {adj}.", f"{subject} {be} hardly what I'd call {adj}.",
        f"there is nothing {adj} about {subject}.", f"I wouldn't call {subject} {adj}, {f(d.bad)}.",
        f"{subject} {be} anything but {adj}.", f"{subject} {be} no longer {adj}.",
    ]))


def n_negated_feeling(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    feel = f(POS_FEEL)
    return _cap(f([
        f"I am not {feel} with {subject} at all.", f"not {_adv(f)}{feel} with {subject}.",
        f"I'm not {feel}, {f(d.bad)}.", f"never been less {feel} with {subject}.",
        f"I can't say I'm {feel} with {subject}.", f"I'm not {feel} about {f(d.issue)}.",
        f"I'm not remotely {feel} with how you handled {f(d.issue)}.",
    ]))


def n_never(f: Filler) -> str:
    d = _domain(f)
    subject, person = _subject(f, d)
    verb = f(["answers", "calls back", "listens", "turns up on time", "gets it right", "follows up"] if person
             else ["works", "works properly", "loads", "arrives on time", "does what it says", "stays connected"])
    return _cap(f([
        f"{subject} never {verb}.", f"{subject} never {verb}, {f(d.bad)}.", f"nothing works. {_cap(f(d.bad))}.",
        f"nobody has helped me with {f(d.issue)}.", f"{subject} still never {verb}.",
        f"still no fix for {f(d.issue)}.", f"no one has bothered to reply about {f(d.issue)}.",
        f"I didn't get any help with {f(d.issue)}.", f"{f(d.bad)} and nobody cares.",
    ]))


def n_rhetorical(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([
        f"why do I have to chase you every time {f(d.bad)}?", f"how hard can it be to sort out {f(d.issue)}?",
        "is anyone actually reading my emails?", f"why is it so difficult to get {f(d.issue)} fixed?",
        f"how many more times do I have to call about {f(d.issue)}?",
        f"do you even care that {f(d.bad)}?", f"what exactly am I paying for when {f(d.bad)}?",
        f"seriously, {f(d.bad)}. Who runs this place?", f"who thought {f(d.things)} was acceptable?",
    ]))


def n_leave(f: Filler) -> str:
    d = _domain(f)
    leave = f(["I'm leaving", "I'm switching to another provider", "I'm cancelling my contract",
               "I'll take my business elsewhere", "I'm going to the ombudsman", "I'm done with you"])
    return _cap(f([
        f"if {f(d.issue)} isn't fixed by {{day}}, {leave}.", f"{f(d.bad)}. {_cap(leave)}.",
        f"{leave}. {_cap(f(d.bad))} and I've had enough.", f"one more problem like {f(d.issue)} and {leave}.",
        f"{f(d.bad)}, so as soon as my contract ends {leave}.",
    ]))


def n_mixed(f: Filler) -> str:
    good, bad = good_clause(f), bad_clause(f)
    return _cap(f([
        f"{good} but {bad}.", f"{good}, however {bad}.", f"although {good}, {bad}.", f"{good}, though {bad}.",
        f"{good}. Unfortunately {bad}.", f"{good} but overall I'm {f(NEG_FEEL)}, {bad}.",
        f"I know {good}, but {bad}.", f"yes {good}, but {bad}.",
    ]))


def n_sarcasm(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([
        f"great, {f(d.bad)}. Thanks a lot.", f"brilliant. {_cap(f(d.bad))} again.",
        f"wonderful service as always: {f(d.bad)}.", f"oh fantastic, {f(d.bad)}. Just what I needed.",
        f"thanks for nothing, {f(d.bad)}.", f"well done, {f(d.bad)}. Again.",
    ]))


def n_repeat(f: Filler) -> str:
    d = _domain(f)
    nth = f(["second", "third", "fourth", "fifth", "sixth", "tenth"])
    return _cap(f([
        f"this is the {nth} time I've contacted you about {f(d.issue)}.",
        f"{nth} time this month I've had to complain: {f(d.bad)}.",
        f"for the {nth} time, {f(d.bad)}.", f"still waiting on {f(d.issue)}, {nth} email now.",
        f"I have now called {{n}} times about {f(d.issue)} and it's still not sorted.",
    ]))


def n_consequence(f: Filler) -> str:
    d = _domain(f)
    cost = f(["I missed a job interview", "I couldn't work from home all week", "I lost a day's pay",
              "my kids missed their online classes", "I couldn't call my mum in hospital",
              "I had to pay for a hotel", "I was late for work twice", "my business lost orders"])
    return _cap(f([f"{f(d.bad)} and because of that {cost}.", f"{cost} because {f(d.bad)}.",
                   f"thanks to you {cost}. {_cap(f(d.bad))}."]))


def n_comparison(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    then = f(["my old provider", "last year", "before the upgrade", "when I joined", "it used to be"])
    return _cap(f([f"{subject} is {f(['much', 'far', 'so much', 'a lot'])} worse than {then}.",
                   f"since {{month}} {subject} has gone downhill.", f"{subject} used to be good, now {f(d.bad)}.",
                   f"my old provider was cheaper and {subject} here is {f(NEG_ADJ)}."]))


def n_short(f: Filler) -> str:
    return f(["worst service ever", "absolute joke", "still no internet!!", "not good enough", "never again",
              "sort it out", "useless.", "avoid!", "complete waste of money", "so disappointed", "rip off",
              "zero stars if I could", "appalling, just appalling", "fuming", "what a shambles", "no signal AGAIN",
              "still waiting...", "disgraceful service", "do not recommend", "terrible, terrible experience",
              "I give up", "cancel my contract now", "shocking customer service", "waste of time", "beyond a joke",
              "ridiculous wait times", "rubbish wifi", "awful app", "hopeless", "very poor", "not impressed"])


def n_story(f: Filler) -> str:
    d = _domain(f)
    return _cap(f(d.fact)) + ". " + _cap(f(d.bad)) + ". " + _cap(f([
        "I called and " + f(["was told to wait", "nobody knew anything", "got cut off",
                             "was promised a fix that never came"]) + ".",
        f"Now {bad_clause(f)}.", f"I'm {_adv(f)}{f(NEG_FEEL)}.", f"{f(CONNECTIVE)} {bad_clause(f)}.",
    ]))


def n_long(f: Filler) -> str:
    d = _domain(f)
    return " ".join([
        _cap(f(d.fact)) + ".", _cap(f(d.bad)) + ".",
        f(["I have called {n} times and", "I emailed twice and", "I spoke to {agent} on {day} and",
           "I used the chat and"]),
        f(["nobody has got back to me.", "was promised a fix that never came.",
           "was told it would be sorted in 48 hours.", "got passed from one department to another."]),
        f(CONNECTIVE) + " " + bad_clause(f) + ".",
        f(["I've been a customer for {years} years and this is how I'm treated.", "I'm paying full price for this.",
           "Frankly I'm " + f(NEG_FEEL) + ".", "This has taken hours of my time."]),
        f(["Please fix it or release me from my contract.", "I expect a refund and an apology.", "Sort it out.",
           "If nothing changes I'm leaving.", "I want this escalated to a manager."]),
    ])  # fmt: skip


def p_long(f: Filler) -> str:
    d = _domain(f)
    return " ".join([
        _cap(f(d.fact)) + ".", f(["I was a bit worried about", "I wasn't sure what to expect from", "I'd put off"]),
        f(d.task) + f([" but", ", but", " and honestly"]), f(d.good) + ".", f(CONNECTIVE) + " " + good_clause(f) + ".",
        f(["{agent} even followed up the next day to check everything was fine.",
           "It all took less time than I expected.",
           "Everything was explained clearly and nothing was left for me to do."]),
        f(["I've already recommended you to {person}.", "Thanks to everyone involved.", "Really impressed, thank you.",
           "Keep up the good work."]),
    ])  # fmt: skip


def u_long(f: Filler) -> str:
    d, e = _domain(f), _domain(f)
    return " ".join([
        _cap(f(d.fact)) + ".", _cap(f(e.fact)) + ".", _cap(f(d.question)) + "?",
        f(["Also, could you", "In the meantime, please", "And can you", "Separately, I'd like you to"]) + " "
        + f(d.request) + f([".", "?", "."]),
        f(["Thanks in advance.", "Let me know if you need anything else from me.", "", "Regards."]),
    ]).strip()  # fmt: skip


def n_call(f: Filler) -> str:
    d = _domain(f)
    who = f(["Customer", "Cust", "Caller", "Mr {surname}", "Ms {surname}", "Mrs {surname}", "Account holder"])
    feel = f(NEG_FEEL)
    action = f(["Escalated to team leader.", "Raised complaint {ticket}.", "Offered callback, declined.",
                "Customer wants to cancel.", "Apologised, customer not satisfied.", "Threatened to leave.",
                "Asked for compensation.", "Wants a manager to call back."])
    issue = f(d.issue)
    return f([f"{who} called, {_adv(f)}{feel} about {issue}. {action}",
              f"{who} {f(['angry', 'upset', 'very unhappy', 'frustrated'])} re {issue}, says {f(d.bad)}. {action}",
              f"Call note: {who.lower()} complained that {f(d.bad)}. {action}",
              f"{who} rang in again, {feel}: {f(d.bad)}. {action}"])


def p_event(f: Filler) -> str:
    d = _domain(f)
    follow = ["", " Thank you!", " Keep it up.", " Really appreciated.", " Well done.", " Top marks.",
              " Great job.", " Much appreciated.", " Made my day.", " Thanks again.", " Very impressed."]
    return _cap(f(d.good)) + "." + f(follow)


def p_feeling(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    feel = f(POS_FEEL)
    return _cap(f([
        f"I'm {_adv(f)}{feel} with {subject}.", f"{subject} {_has(subject)} left me {_adv(f)}{feel}.",
        f"{_adv(f)}{feel} with how {f(d.task)} went.", f"I am {_adv(f)}{feel}, {f(d.good)}.",
        f"{feel}! {_cap(f(d.good))}.", f"so {feel} I switched to you.", f"couldn't be more {feel} with {subject}.",
    ]))


def p_judgement(f: Filler) -> str:
    d = _domain(f)
    subject, person = _subject(f, d)
    adj = f(POS_PEOPLE if person else POS_ADJ)
    be = _is_are(subject)
    return _cap(f([
        f"{subject} {be} {_graded(f, adj)}.", f"{subject} {be} {adj}, {_graded(f, adj, 1.0)}.",
        f"{_what_a(f, POS_PEOPLE if person else POS_ADJ, subject)}.",
        f"{subject}? {_cap(adj)}.", f"{subject} {be} {_graded(f, adj)} and {f(POS_ADJ)}.",
        f"honestly {subject} {be} {adj}.",
    ]))


def p_negated_problem(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    return _cap(f([
        f"no problems at all with {subject}.", f"never had an issue with {subject}.",
        f"not a single problem since {{month}}.", f"nothing to complain about, {f(d.good)}.",
        f"I can't fault {subject}.", f"couldn't be happier with {subject}.", f"can't complain, {f(d.good)}.",
        f"{subject} {_has(subject)} never let me down.", "no complaints whatsoever.",
        "not one dropout in {n} months.",
        f"zero issues with {subject} so far.", f"no hassle at all with {f(d.task)}.",
        f"no fuss, no waiting, {f(d.good)}.", f"I haven't had a single problem with {subject}.",
        f"nothing but good things to say about {subject}.", f"never once had to chase you, {f(d.good)}.",
    ]))


def p_thanks(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([
        f"thanks to {{agent}} for {f(d.task)}, {f(POS_ADJ)} service.", f"a big thank you to {{agent}} for {f(d.task)}.",
        f"huge thanks to {{agent}}, {f(d.good)}.", f"I just wanted to say thank you for {f(d.task)}.",
        f"thank you so much for {f(d.task)}, it made a real difference.",
        f"please pass on my thanks to {{agent}} for {f(d.task)}.", f"cheers {{agent}}, {f(d.good)}.",
        f"many thanks for {f(d.task)}. {_cap(f(d.good))}.",
    ]))


def p_mixed(f: Filler) -> str:
    good, bad = good_clause(f), bad_clause(f)
    return _cap(f([
        f"{bad} but {good}.", f"{bad}, however {good}.", f"although {bad}, {good}.", f"{bad}, though {good}.",
        f"{bad} at first. Luckily {good}.", f"{bad} but overall I'm {f(POS_FEEL)}, {good}.",
        f"I admit {bad}, but {good}.", f"ok {bad}, but {good}.",
    ]))


def p_recommend(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    return _cap(f([
        f"I'd {f(['definitely', 'happily', 'without hesitation', '100%'])} recommend {subject} to "
        f"{f(['friends', 'anyone', 'my family', 'everyone'])}.",
        f"would recommend. {_cap(f(d.good))}.", f"already recommended you to {{person}}, {f(d.good)}.",
        f"recommended! {_cap(f(d.good))}.", f"{f(d.good)}, so I've told all my friends to switch.",
    ]))


def p_solved(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([
        f"I had {f(d.issue)} but {{agent}} {f(['fixed it', 'sorted it', 'resolved it', 'dealt with it'])} "
        f"{f(['straight away', 'in minutes', 'the same day', 'on the first call'])}.",
        f"after {f(d.issue)}, {f(d.good)}.",
        f"{f(d.issue)} was sorted {f(['quickly', 'within the hour', 'the same day', 'without fuss'])}, "
        f"{f(['thank you', 'very impressed', 'great work', 'well done'])}.",
        f"my {f(['problem', 'issue', 'complaint'])} with {f(d.issue)} is now resolved and {f(d.good)}.",
    ]))


def p_loyal(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([
        f"I've been with you for {{years}} years and {f(d.good)}.",
        f"{{years}} years a customer and still {f(POS_FEEL)}.",
        f"loyal customer for {{years}} years, {f(POS_ADJ)} as always.",
        f"{{years}} years with you and never a reason to leave.",
    ]))


def p_comparison(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    return _cap(f([
        f"{subject} is {f(['much', 'far', 'so much', 'a lot'])} better than "
        f"{f(['my old provider', 'before', 'I expected', 'last year'])}.",
        f"since switching to {{product}}, {f(d.good)}.", f"best provider I've had, {f(d.good)}.",
        f"way better than my last network, {f(d.good)}.",
    ]))


def p_short(f: Filler) -> str:
    return f(["love it", "spot on, thanks", "brilliant service!!", "10/10", "cheers, all sorted", "perfect, thank you",
              "great stuff", "amazing!", "so quick, thanks", "fab service", "five stars", "really happy :)",
              "superb", "can't fault it", "excellent as always", "thank you so much!", "very happy customer",
              "top service", "smooth and easy", "lovely staff", "fast delivery, great phone", "well impressed",
              "nothing but praise", "best network ever", "wonderful, thanks", "happy days", "great value"])


def p_story(f: Filler) -> str:
    d = _domain(f)
    return _cap(f(d.fact)) + ". " + _cap(f(d.good)) + ". " + _cap(f([
        f"{{agent}} even {f(['called to check on me', 'followed up by email', 'gave me a discount'])}.",
        f"{f(CONNECTIVE)} {good_clause(f)}.", f"I'm {_adv(f)}{f(POS_FEEL)}.", f"Thanks to everyone involved.",
    ]))


def p_call(f: Filler) -> str:
    d = _domain(f)
    who = f(["Customer", "Cust", "Caller", "Mr {surname}", "Ms {surname}", "Mrs {surname}", "Account holder"])
    return f([f"{who} called to thank {{agent}} for {f(d.task)}. No further action.",
              f"{who} very happy, {f(d.good)}. Logged compliment.",
              f"Call note: {who.lower()} said {f(d.good)} and wanted to pass on thanks.",
              f"{who} rang to say {f(d.good)}. Compliment forwarded to team leader.",
              f"{who} {f(['delighted', 'pleased', 'really happy'])} with {f(d.things)}. Closed."])


def u_question(f: Filler) -> str:
    d = _domain(f)
    q = f(d.question)
    return _cap(f([f"{q}?", f"quick question: {q}?", f"could you tell me {q}?", f"I was wondering {q}.",
                   f"hello, {q}?", f"can you let me know {q}?", f"just checking, {q}?", f"{q}? Thanks."]))


def u_request(f: Filler) -> str:
    d = _domain(f)
    r = f(d.request)
    return _cap(f([f"please {r}.", f"could you {r}?", f"can you {r} please?", f"I'd like you to {r}.",
                   f"I need you to {r}.", f"would you be able to {r}?", f"{r}, please.", f"kindly {r}.",
                   f"is it possible to {r}?", f"I'd be grateful if you could {r}."]))


def u_order(f: Filler) -> str:
    qty = f(["", " x1", " x2", ", two of them", ", quantity 3"])
    return _cap(f([f"I'd like to order {{product}}{qty}.", f"please add {{product}} to order {{order_no}}.",
                   f"order: {{product}}{qty}, deliver to {{city}}.", f"I want to buy {{product}} for {{person}}.",
                   f"can I order {{product}} online and collect in {{city}}?",
                   f"I'll take {{product}} on the 24 month plan.",
                   f"please put through an order for {{product}}.", f"new order: {{product}} and {{product}}."]))


def u_fact(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([f"{f(d.fact)}.", f"just so you know, {f(d.fact)}.", f"for your records, {f(d.fact)}.",
                   f"FYI {f(d.fact)}.", f"{f(d.fact)}, {f(d.fact)}."]))


def u_fact_question(f: Filler) -> str:
    d = _domain(f)
    return _cap(f(d.fact)) + ". " + _cap(f(d.question)) + "?"


def u_fact_request(f: Filler) -> str:
    d = _domain(f)
    return _cap(f(d.fact)) + ", so " + f(["please ", "could you ", "can you ", "I need you to "]) + f(d.request) + "."


def u_report(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([f"how do I report {f(d.issue)}?", f"who should I contact about {f(d.issue)}?",
                   f"what is the process for {f(d.issue)}?", f"where do I send details of {f(d.issue)}?",
                   f"do I need a reference number to ask about {f(d.issue)}?",
                   f"I'm writing to ask how long it usually takes to look into {f(d.issue)}."]))


def u_status(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([f"any update on {f(d.issue)}?", f"could you check the status of {f(d.issue)}?",
                   f"I'm following up on {f(d.issue)}, reference {{ticket}}.", f"what's the latest on {f(d.issue)}?",
                   f"is there any news about {f(d.issue)}?",
                   f"I'm getting in touch about {f(d.issue)}. {_cap(f(d.question))}?",
                   f"regarding {f(d.issue)}: {f(d.question)}?",
                   f"please confirm you received my message about {f(d.issue)}."]))


def u_lukewarm(f: Filler) -> str:
    d = _domain(f)
    subject, _ = _subject(f, d)
    return _cap(f([f"{subject} is okay, nothing special.", f"{subject} does the job.", f"{subject} is fine I suppose.",
                   f"{subject} is average, about what I expected.", f"no strong feelings about {subject}.",
                   f"{subject} is alright, neither good nor bad.", f"{subject} is {f(DOWNTONER)} basic but it works.",
                   f"it's fine. {_cap(subject)} {_is_are(subject)} what it is.",
                   f"{subject} is acceptable for the price.",
                   f"{subject}: standard, as expected."]))


def u_confirm(f: Filler) -> str:
    d = _domain(f)
    got = f(["the SIM", "your email", "the new {device}", "the contract", "the letter", "my PIN"])
    then = f(["wait for the engineer", "keep an eye on the tracking", "check the app later", "call back on {day}"])
    return _cap(f([f"just confirming I received {got}.", f"noted, I'll {then}.",
                   f"received the {{device}}, will set it up tonight.", f"ok, I'll send {{document}} today.",
                   f"attached is {{document}}. {_cap(f(d.question))}?",
                   f"thanks for the update, I'll check again on {{day}}.",
                   f"I've sent {{document}} as requested."]))


def u_negated(f: Filler) -> str:
    d = _domain(f)
    return _cap(f([f"I don't need {{product}} anymore, please remove it.",
                   f"I haven't received my PIN yet, when should it arrive?",
                   f"I no longer live in {{city}}, please {f(d.request)}.",
                   f"I don't use the landline, can it be removed?",
                   f"I didn't get a reference number for my call on {{day}}, could you send it?",
                   f"I won't be home on {{day}}, {f(d.request)} please.",
                   f"not sure which plan I'm on, {f(d.question)}?",
                   f"I haven't decided yet, {f(d.question)}?", f"I don't have a printer, can you email me the form?"]))


def u_chat_short(f: Filler) -> str:
    return f(["need help with my bill", "question about roaming", "hello, is anyone there?", "change of address",
              "upgrade options?", "how do I cancel", "talk to an agent", "data balance please", "billing query",
              "new SIM needed", "porting my number", "order status {order_no}", "payment date change",
              "where is my order", "reset password", "store opening times", "is the app down?", "PUK code please",
              "speak to sales", "broadband packages", "eSIM setup", "account number?", "contract end date?"])


def u_call(f: Filler) -> str:
    d = _domain(f)
    who = f(["Customer", "Cust", "Caller", "Mr {surname}", "Ms {surname}", "Mrs {surname}", "Account holder"])
    done = f(["Sent info by email.", "Advised and closed.", "Updated account.", "Booked for {day}.",
              "No further action.", "Transferred to sales.", "Sent link by SMS.", "Will call back on {day}."])
    return f([f"{who} called to ask {f(d.question)}. {done}", f"{who} requested to {f(d.request)}. {done}",
              f"Call note: {who.lower()} asked {f(d.question)}. {done}", f"{who} called, {f(d.fact)}. {done}",
              f"{who} rang re {f(d.issue)}, wanted an update only. {done}"])


FAMILIES: dict[str, tuple[str, tuple[str, ...], float, object]] = {
    "n_event": (NEG, WRITTEN, 2.0, n_event), "n_feeling": (NEG, WRITTEN, 1.2, n_feeling),
    "n_judgement": (NEG, WRITTEN, 1.2, n_judgement), "n_negated_praise": (NEG, WRITTEN, 1.2, n_negated_praise),
    "n_never": (NEG, WRITTEN, 1.0, n_never), "n_negated_feeling": (NEG, WRITTEN, 0.8, n_negated_feeling),
    "n_rhetorical": (NEG, WRITTEN, 0.8, n_rhetorical),
    "n_leave": (NEG, WRITTEN, 0.8, n_leave), "n_mixed": (NEG, WRITTEN, 1.6, n_mixed),
    "n_sarcasm": (NEG, WRITTEN, 0.5, n_sarcasm), "n_repeat": (NEG, WRITTEN, 0.8, n_repeat),
    "n_consequence": (NEG, WRITTEN, 0.7, n_consequence), "n_comparison": (NEG, WRITTEN, 0.7, n_comparison),
    "n_short": (NEG, (CHAT, REVIEW), 0.3, n_short), "n_story": (NEG, (EMAIL, REVIEW), 1.0, n_story),
    "n_call": (NEG, (CALL,), 1.0, n_call), "n_long": (NEG, (EMAIL, REVIEW), 0.6, n_long),
    "p_event": (POS, WRITTEN, 2.0, p_event), "p_feeling": (POS, WRITTEN, 1.2, p_feeling),
    "p_judgement": (POS, WRITTEN, 1.2, p_judgement), "p_negated_problem": (POS, WRITTEN, 1.3, p_negated_problem),
    "p_thanks": (POS, WRITTEN, 1.2, p_thanks), "p_mixed": (POS, WRITTEN, 1.6, p_mixed),
    "p_recommend": (POS, WRITTEN, 0.8, p_recommend), "p_solved": (POS, WRITTEN, 1.0, p_solved),
    "p_loyal": (POS, WRITTEN, 0.5, p_loyal), "p_comparison": (POS, WRITTEN, 0.7, p_comparison),
    "p_short": (POS, (CHAT, REVIEW), 0.3, p_short), "p_story": (POS, (EMAIL, REVIEW), 1.0, p_story),
    "p_call": (POS, (CALL,), 1.0, p_call), "p_long": (POS, (EMAIL, REVIEW), 0.6, p_long),
    "u_question": (NEU, (EMAIL, CHAT), 2.0, u_question), "u_request": (NEU, (EMAIL, CHAT), 2.0, u_request),
    "u_order": (NEU, (EMAIL, CHAT), 1.0, u_order), "u_fact": (NEU, (EMAIL, CHAT), 0.8, u_fact),
    "u_fact_question": (NEU, (EMAIL, CHAT), 1.0, u_fact_question),
    "u_fact_request": (NEU, (EMAIL, CHAT), 1.0, u_fact_request), "u_report": (NEU, (EMAIL, CHAT), 0.8, u_report),
    "u_status": (NEU, (EMAIL, CHAT), 0.8, u_status),
    "u_lukewarm": (NEU, WRITTEN, 0.8, u_lukewarm), "u_confirm": (NEU, (EMAIL, CHAT), 0.8, u_confirm),
    "u_negated": (NEU, (EMAIL, CHAT), 0.8, u_negated), "u_chat_short": (NEU, (CHAT,), 0.3, u_chat_short),
    "u_call": (NEU, (CALL,), 1.2, u_call), "u_long": (NEU, (EMAIL,), 0.6, u_long),
}  # fmt: skip


# --- channel dressing and noise -------------------------------------------------------------------------------------

_GREETING = ["Hi,", "Hello,", "Hi there,", "Dear team,", "Dear Sir or Madam,", "Good morning,", "Hello team,",
             "To whom it may concern,", "Hi {agent},", "Evening,"]  # fmt: skip
_SIGNOFF = ["Regards, {name}", "Thanks, {name}", "Kind regards, {name}", "Best, {name}", "{name}", "Cheers, {name}",
            "Sent from my phone", "Many thanks", "Yours faithfully, {name}", "Thank you"]  # fmt: skip
_CHAT_START = ["hi ", "hey ", "hello ", "hiya ", "hi, ", "", "", "", "ok so ", "um "]
_STARS = {NEG: ["1/5. ", "2/5. ", "★☆☆☆☆ ", "One star. ", "2 stars: "], NEU: ["3/5. ", "★★★☆☆ ", "3 stars. "],
          POS: ["5/5. ", "4/5. ", "★★★★★ ", "Five stars. ", "4 stars: "]}  # fmt: skip
_CHAT_WORDS = {"you": "u", "please": "pls", "thanks": "thx", "because": "cos", "your": "ur", "really": "rly",
               "message": "msg", "tomorrow": "tmrw", "people": "ppl", "and": "&"}  # fmt: skip
_MISSPELL = {"received": "recieved", "definitely": "definately", "separate": "seperate", "address": "adress",
             "appointment": "appointmant", "engineer": "enginear", "broadband": "broadbnad", "delivery": "delivary",
             "business": "buisness", "refund": "refud", "disappointed": "dissapointed", "tomorrow": "tommorow",
             "which": "wich", "cancelled": "canceled", "until": "untill", "really": "realy", "argument": "arguement",
             "experience": "experiance", "customer": "costumer", "immediately": "immediatly"}  # fmt: skip


def dress(f: Filler, text: str, label: str, channel: str) -> str:
    if channel == EMAIL and f.chance(0.45):
        text = f"{f(_GREETING)} {text}"
        if f.chance(0.6):
            text = f"{text} {f(_SIGNOFF)}"
    elif channel == CHAT:
        text = f(_CHAT_START) + (text[:1].lower() + text[1:] if f.chance(0.7) else text)
        if f.chance(0.4):
            text = text.rstrip(".")
        if f.chance(0.3):
            text = re.sub(r"\b(\w+)\b", lambda m: _CHAT_WORDS.get(m.group(1), m.group(1)), text)
    elif channel == REVIEW and f.chance(0.35):
        text = f(_STARS[label]) + text
    if label != NEU and f.chance(0.12):
        text = text.rstrip(".") + f(["!", "!!", "!!!"])
    return text


def add_typos(f: Filler, text: str) -> str:
    """1-2 typos: a common misspelling, or a swapped, dropped or doubled letter in a word of 4+ letters."""
    words = text.split(" ")
    for _ in range(int(f.rng.integers(1, 3))):
        i = int(f.rng.integers(len(words)))
        w = words[i]
        if w.lower() in _MISSPELL:
            words[i] = _MISSPELL[w.lower()]
            continue
        if len(w) < 4 or not w.isalpha():
            continue
        j = int(f.rng.integers(1, len(w) - 1))
        kind = f.rng.integers(3)
        words[i] = (w[:j] + w[j + 1] + w[j] + w[j + 2:] if kind == 0 else w[:j] + w[j + 1:] if kind == 1
                    else w[:j] + w[j] + w[j:])  # fmt: skip
    return " ".join(words)


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    family: str
    channel: str
    split: str  # "train" or "test"


def generate_corpus(n: int = 30_000, seed: int = 42) -> list[Example]:
    """`n` distinct examples (fewer only if the families run out of new texts), label shares as LABEL_SHARE."""
    f = Filler(np.random.default_rng(seed))
    seen: set[str] = set()
    out: list[Example] = []
    for label in LABELS:
        names = [name for name, spec in FAMILIES.items() if spec[0] == label]
        weights = np.array([FAMILIES[name][2] for name in names])
        quota = np.floor(weights / weights.sum() * LABEL_SHARE[label] * n).astype(int)
        for name, want in zip(names, quota):
            _, channels, _, build = FAMILIES[name]
            made = attempts = 0
            while made < want and attempts < 50 * want:
                attempts += 1
                channel = f.pick(channels)
                text = dress(f, build(f), label, channel)
                if f.chance(0.08):
                    text = add_typos(f, text)
                if f.chance(0.08):
                    text = text.lower()
                text = re.sub(r"\s+", " ", text).strip()
                key = text.lower()
                if key in seen:
                    continue
                seen.add(key)
                out.append(Example(text, label, name, channel, "test" if name in HOLDOUT_FAMILIES else "train"))
                made += 1
    order = np.random.default_rng([seed, 2]).permutation(len(out))
    return [out[i] for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="write the corpus as JSON lines")
    args = parser.parse_args()
    corpus = generate_corpus(args.n, args.seed)
    if args.out:
        with args.out.open("w", encoding="utf-8") as fh:
            for ex in corpus:
                fh.write(json.dumps(asdict(ex)) + "\n")
    print(f"{len(corpus):,} examples; held-out families: {sorted(HOLDOUT_FAMILIES)}")
    for split in ("train", "test"):
        print(split, dict(Counter(ex.label for ex in corpus if ex.split == split)))
    print("channels", dict(Counter(ex.channel for ex in corpus)))
    words = Counter(w for ex in corpus for w in re.findall(r"[a-z']+", ex.text.lower()))
    print(f"{len(words):,} distinct words; mean length {np.mean([len(ex.text.split()) for ex in corpus]):.1f} words")
    for ex in corpus[:40]:
        print(f"  [{ex.label[:3]}] {ex.family:18s} {ex.text}")


if __name__ == "__main__":
    sys.exit(main())
