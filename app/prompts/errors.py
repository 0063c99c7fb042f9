from app.core.errors import Conflict, NotFound, UnprocessableContent


class TemplateNotFound(NotFound):
    problem = "prompt-template-not-found"
    title = "Prompt template not found"


class VersionNotFound(NotFound):
    problem = "prompt-template-version-not-found"
    title = "Prompt template version not found"


class LabelNotFound(NotFound):
    problem = "prompt-template-label-not-found"
    title = "Prompt template label not found"


class TemplateNameTaken(Conflict):
    problem = "prompt-template-name-taken"
    title = "Prompt template name taken"


class InvalidTemplate(UnprocessableContent):
    """A version that cannot be saved: its text uses an undeclared variable, does not
    parse, or its variables are not a JSON Schema of an object."""

    problem = "invalid-prompt-template"
    title = "Invalid prompt template"


class MissingVariables(UnprocessableContent):
    problem = "missing-variables"
    title = "Missing variables"


class InvalidVariables(UnprocessableContent):
    problem = "invalid-variables"
    title = "Invalid variables"


class RenderRefused(UnprocessableContent):
    """The template may not render: the sandbox refused it, it took too long or made too
    much text."""

    problem = "render-refused"
    title = "Render refused"


class TemplateInUse(Conflict):
    problem = "prompt-template-in-use"
    title = "Prompt template in use"


class InvalidTemplateReference(UnprocessableContent):
    problem = "invalid-template-reference"
    title = "Invalid template reference"
