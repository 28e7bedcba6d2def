import streamlit as st
st.title("word_space")
st.info("Coming soon")
