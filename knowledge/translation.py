"""Translated fields (django-modeltranslation): one column per interface language."""

from __future__ import annotations

from modeltranslation.translator import TranslationOptions, register

from knowledge.models import Article, Category


@register(Article)
class ArticleTranslationOptions(TranslationOptions):
    fields = ("title", "body", "url")


@register(Category)
class CategoryTranslationOptions(TranslationOptions):
    fields = ("name",)
